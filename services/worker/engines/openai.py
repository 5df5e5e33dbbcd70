"""The OpenAI engine: gpt-image-1 ``images.edit``, with the worker's retry policy instead of the client's."""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import functools
import io
import math
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from types import TracebackType
from typing import Literal, Self, TypeVar

import openai
from openai.types import ImagesResponse
from openai.types.images_response import Usage, UsageInputTokensDetails
from PIL import Image, ImageOps

from services.worker.engines import EnhanceRequest, EnhanceResult, canvas
from services.worker.engines.canvas import Placement, Size
from services.worker.engines.styles import PRESETS, TIER_OUTPUT, TierOutput
from shared.domain import Style, Tier
from shared.errors import EngineError, PermanentEngineError, TransientEngineError, UnsupportedImage
from shared.imaging import DEFAULT_MAX_PIXELS, open_image

NAME = "openai"

_T = TypeVar("_T")

# gpt-image-1 list prices in US dollars per token (openai.com/api/pricing: per 1M tokens, text input $5,
# image input $10, image output $40).
TEXT_INPUT_PRICE = Decimal("5") / 1_000_000
IMAGE_INPUT_PRICE = Decimal("10") / 1_000_000
IMAGE_OUTPUT_PRICE = Decimal("40") / 1_000_000
_COST_QUANTUM = Decimal("0.000001")
# A longer Retry-After is not believed: the job waits this long and asks again.
MAX_RETRY_AFTER_S = 3600.0

_QUALITY: Mapping[Tier, Literal["low", "high"]] = {Tier.FREE: "low", Tier.PREMIUM: "high"}
_OUTPUT_MAX_PIXELS = 4096 * 4096
# The same statuses the openai client would retry itself; everything else 4xx will fail again.
_TRANSIENT_STATUSES = frozenset({408, 409, 429})
_BRIEF = "Edit this real-estate listing photo."
_KEEP = (
    "Keep the property exactly as it is: the same architecture, rooms, fixtures, furniture, layout and "
    "camera angle. Do not add, remove or move objects."
)
_KEEP_STRICTLY = (
    f"{_KEEP} Change only light, colour and clarity: every wall, window, door, roof line, plant and piece of "
    "furniture must stay exactly where it is, with the same shape and perspective."
)
# Upper bounds of one call's usage, for the budget's hold: output tokens of the largest canvas per quality
# (OpenAI's image-generation guide), a photo's input tokens at high fidelity, a prompt's text tokens.
_MAX_OUTPUT_TOKENS: Mapping[Literal["low", "high"], int] = {"low": 408, "high": 6240}
_MAX_IMAGE_INPUT_TOKENS = 6_500
_MAX_TEXT_TOKENS = 1_500


@dataclass(frozen=True)
class Upload:
    """The photo as sent to OpenAI: an upright RGB JPEG of a whole canvas, without metadata.

    ``width`` and ``height`` are the upright photo's own, whose aspect the result keeps; ``placement``
    says which canvas was sent and where on it the photo sits.
    """

    data: bytes
    width: int
    height: int
    placement: Placement


class OpenAIEngine:
    """Asks gpt-image-1 for the edit; owns an HTTP client, so close it (or use ``async with``)."""

    name: str = NAME

    def __init__(
        self,
        api_key: str,
        base_url: str | None,
        model: str = "gpt-image-1",
        timeout: float = 120.0,
        *,
        executor: Executor | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        # max_retries=0: the worker retries with backoff; client retries on top bill one job many times.
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        self._model = model
        self._executor = executor
        self._max_pixels = max_pixels

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def closed(self) -> bool:
        return self._client.is_closed()

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        upload = await self._in_executor(functools.partial(prepare_upload, request.image, self._max_pixels))
        response = await self._edit(upload, request)
        cost = cost_of(response.usage)
        try:
            work = functools.partial(finish, _first_image(response), upload, TIER_OUTPUT[request.tier])
            image, (width, height) = await self._in_executor(work)
        except EngineError as error:
            error.cost += cost  # billed though unusable: the job's cost still counts it
            raise
        return EnhanceResult(image=image, content_type="image/jpeg", width=width, height=height, cost=cost, engine=NAME)

    async def _edit(self, upload: Upload, request: EnhanceRequest) -> ImagesResponse:
        try:
            return await self._client.images.edit(
                image=("photo.jpg", upload.data, "image/jpeg"),
                prompt=build_prompt(request.style, request.prompt, strict=request.strict),
                model=self._model,
                n=1,
                size=upload.placement.size,
                quality=_QUALITY[request.tier],
                output_format="jpeg",
                output_compression=TIER_OUTPUT[request.tier].jpeg_quality,
            )
        except openai.APIError as exc:
            raise translate_error(exc) from exc

    async def _in_executor(self, work: functools.partial[_T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)


def build_prompt(style: Style, user_prompt: str, *, strict: bool = False) -> str:
    """The style preset's request, the user's words, then the guard against altering the property
    (stricter when an earlier output of this photo moved its structure).

    The guard comes last so that no client sentence ("ignore the above and add a pool") is the final word.
    """
    parts = [_BRIEF, PRESETS[style].prompt]
    if user_prompt.strip():
        parts.append(f"Client's request: {user_prompt.strip()}")
    parts.append(_KEEP_STRICTLY if strict else _KEEP)
    return " ".join(parts)


def worst_case_cost(tier: Tier) -> Decimal:
    """The most one call at `tier` can be billed: what the daily budget holds while the call is in flight."""
    return (
        _MAX_TEXT_TOKENS * TEXT_INPUT_PRICE
        + _MAX_IMAGE_INPUT_TOKENS * IMAGE_INPUT_PRICE
        + _MAX_OUTPUT_TOKENS[_QUALITY[tier]] * IMAGE_OUTPUT_PRICE
    ).quantize(_COST_QUANTUM)


def cost_of(usage: Usage | None) -> Decimal:
    """US dollars for one call from its token usage; zero when the server reports none."""
    if usage is None:
        return Decimal("0")
    # Compatible servers may leave the breakdown out: then every input token is billed as an image token.
    details: UsageInputTokensDetails | None = getattr(usage, "input_tokens_details", None)
    text_tokens = details.text_tokens if details is not None else 0
    cost = (
        text_tokens * TEXT_INPUT_PRICE
        + (usage.input_tokens - text_tokens) * IMAGE_INPUT_PRICE
        + usage.output_tokens * IMAGE_OUTPUT_PRICE
    )
    return cost.quantize(_COST_QUANTUM)


def translate_error(exc: openai.APIError) -> EngineError:
    """Timeouts, connection failures, 408/409/429 and 5xx are transient; other refusals permanent."""
    if isinstance(exc, openai.APITimeoutError):
        return TransientEngineError("OpenAI did not answer in time", code="openai_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return TransientEngineError(f"OpenAI unreachable: {exc}", code="openai_unavailable")
    if not isinstance(exc, openai.APIStatusError):
        return PermanentEngineError(f"unexpected OpenAI response: {exc}", code="openai_bad_response")
    message = f"OpenAI answered {exc.status_code}: {_detail(exc)}"
    if exc.code == "insufficient_quota":
        # Also a 429, but no amount of waiting pays the bill.
        return PermanentEngineError(
            f"OpenAI quota exhausted (check the account's billing): {message}", code="openai_quota"
        )
    if exc.status_code in _TRANSIENT_STATUSES or exc.status_code >= 500:
        wait = retry_after(exc.response.headers, now=time.time())
        code = "openai_rate_limited" if exc.status_code == 429 else "openai_unavailable"
        return TransientEngineError(message, code=code, retry_after_s=wait)
    return PermanentEngineError(message, code="openai_rejected")


def _detail(exc: openai.APIStatusError) -> str:
    """The server's own words (the error body's message) rather than the client's dump of the body."""
    body = exc.body
    said = body.get("message") if isinstance(body, dict) else None
    return said if isinstance(said, str) and said else exc.message


def retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, else `Retry-After` in seconds or as an
    HTTP date), at most an hour; None when it did not say, or said something unreadable.
    """
    try:
        if (millis := headers.get("retry-after-ms")) is not None:
            wait = float(millis) / 1000
        elif (value := headers.get("retry-after")) is None:
            return None
        elif value.strip().isdigit():
            wait = float(value)
        else:
            when = email.utils.parsedate_to_datetime(value)
            wait = when.replace(tzinfo=when.tzinfo or UTC).timestamp() - now  # HTTP dates are GMT
    except (ValueError, TypeError, OverflowError):
        return None
    if not math.isfinite(wait):
        return None
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)


def prepare_upload(data: bytes, max_pixels: int) -> Upload:
    """Upright, RGB, fitted onto the nearest canvas, re-encoded so no EXIF (GPS) leaves our hands."""
    try:
        image = ImageOps.exif_transpose(open_image(data, max_pixels=max_pixels)).convert("RGB")
    except UnsupportedImage as exc:
        raise PermanentEngineError(exc.message, code=exc.code) from exc
    fitted, placement = canvas.fit(image)
    # Full-resolution chroma: halved, the pad's grey would tint the photo's edge pixels.
    data = _jpeg(fitted, quality=95, subsampling=0)
    return Upload(data=data, width=image.width, height=image.height, placement=placement)


def finish(answer: bytes, upload: Upload, output: TierOutput) -> tuple[bytes, Size]:
    """The photo cut out of the model's answer, at the tier's long edge and quality, and its size."""
    try:
        image = open_image(answer, max_pixels=_OUTPUT_MAX_PIXELS).convert("RGB")
    except UnsupportedImage as exc:
        message = f"OpenAI returned a bad image: {exc.message}"
        raise PermanentEngineError(message, code="openai_bad_output") from exc
    photo = canvas.cut(image, upload.placement)
    # Sized from the photo's own aspect, not the cut's, which rounding may have moved by a pixel.
    photo = photo.resize(output.size_for(upload.width, upload.height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return _jpeg(photo, quality=output.jpeg_quality, optimize=True), photo.size


def _jpeg(image: Image.Image, **options: int | bool) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def _first_image(response: ImagesResponse) -> bytes:
    encoded = response.data[0].b64_json if response.data else None
    if not encoded:
        raise PermanentEngineError("OpenAI returned no image", code="openai_bad_response")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise PermanentEngineError("OpenAI returned undecodable data", code="openai_bad_response") from exc
