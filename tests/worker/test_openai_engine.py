"""The OpenAI engine against a local OpenAI-compatible server: results, costs and error mapping."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime

import numpy as np
import pytest
from PIL import Image

from services.worker.engines import EnhanceRequest
from services.worker.engines.canvas import PAD
from services.worker.engines.openai import MAX_RETRY_AFTER_S, OpenAIEngine, build_prompt, retry_after
from services.worker.engines.styles import TIER_OUTPUT
from shared.domain import Style, Tier
from shared.errors import PermanentEngineError, TransientEngineError
from tests.harness.fake_openai import USAGE_COST, FakeOpenAI, Reply, serve_fake_openai
from tests.worker import photos


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async for fake in serve_fake_openai():
        yield fake


@pytest.fixture
async def engine(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIEngine]:
    async with OpenAIEngine("sk-test", fake_openai.base_url, timeout=5.0) as engine:
        yield engine


def request(
    tier: Tier = Tier.PREMIUM, prompt: str = "warmer please", pixels: photos.Pixels | None = None
) -> EnhanceRequest:
    photo = photos.encode(photos.house() if pixels is None else pixels, exif=photos.gps_exif())
    return EnhanceRequest(photo, prompt, tier, Style.DUSK)


async def test_premium_edit_returns_the_image_its_size_and_cost(engine: OpenAIEngine, fake_openai: FakeOpenAI) -> None:
    result = await engine.enhance(request())

    assert (result.content_type, result.width, result.height) == ("image/jpeg", 1536, 1152)
    assert (result.cost, result.engine) == (USAGE_COST, "openai")
    [call] = fake_openai.calls
    assert call["authorization"] == "Bearer sk-test"
    assert (call["model"], call["n"]) == ("gpt-image-1", "1")
    assert (call["size"], call["quality"]) == ("1536x1024", "high")
    assert (call["output_format"], call["output_compression"]) == ("jpeg", "92")
    assert call["prompt"] == build_prompt(Style.DUSK, "warmer please")
    assert "twilight" in call["prompt"]
    assert "Client's request: warmer please" in call["prompt"]
    assert call["prompt"].endswith("Do not add, remove or move objects.")  # the guard has the last word


async def test_free_tier_asks_for_low_quality_and_gets_its_long_edge(
    engine: OpenAIEngine, fake_openai: FakeOpenAI
) -> None:
    result = await engine.enhance(request(Tier.FREE, prompt=""))

    assert (result.width, result.height) == (1024, 768)
    [call] = fake_openai.calls
    assert (call["size"], call["quality"]) == ("1536x1024", "low")
    assert (call["output_format"], call["output_compression"]) == ("jpeg", "82")


async def test_the_upload_is_upright_and_has_no_exif(engine: OpenAIEngine, fake_openai: FakeOpenAI) -> None:
    await engine.enhance(request())

    with Image.open(io.BytesIO(fake_openai.calls[0]["image"])) as sent:
        assert sent.size == (1536, 1024)
        assert not sent.getexif()


CANVASES = {"4:3": "1536x1024", "3:2": "1536x1024", "16:9": "1536x1024", "1:1": "1024x1024", "3:4": "1024x1536"}


@pytest.mark.parametrize("tier", list(Tier))
@pytest.mark.parametrize("aspect", list(photos.ASPECTS))
async def test_the_nearest_canvas_is_sent_and_the_photos_aspect_comes_back(
    engine: OpenAIEngine, fake_openai: FakeOpenAI, aspect: str, tier: Tier
) -> None:
    photo = photos.ASPECTS[aspect]

    result = await engine.enhance(request(tier, pixels=photos.house(*photo)))

    [call] = fake_openai.calls
    assert call["size"] == CANVASES.get(aspect, "1536x1024")
    assert "x".join(map(str, call["image_size"])) == call["size"]
    with Image.open(io.BytesIO(result.image)) as image:
        assert (image.format, image.size) == ("JPEG", (result.width, result.height))
    assert result.content_type == "image/jpeg"
    assert photos.keeps_aspect(image.size, photo, TIER_OUTPUT[tier].long_edge)


@pytest.mark.parametrize("answer_size", [None, (768, 512)], ids=["as asked", "smaller than asked"])
@pytest.mark.parametrize("aspect", ["4:3", "16:9", "3:4", "3:1 panorama"])
async def test_the_padding_is_cut_off_the_answer(
    engine: OpenAIEngine, fake_openai: FakeOpenAI, aspect: str, answer_size: tuple[int, int] | None
) -> None:
    fake_openai.answer_size = answer_size
    photo = photos.house(*photos.ASPECTS[aspect])

    result = await engine.enhance(request(Tier.PREMIUM, pixels=photo))

    sent = photos.decode(fake_openai.calls[0]["image"])
    # The photo sits centred on the canvas, padded on two opposite sides...
    assert [_is_pad(edge) for edge in _edges(sent)] in ([True, True, False, False], [False, False, True, True])
    for output_edge, photo_edge in zip(_edges(photos.decode(result.image)), _edges(photo), strict=True):
        assert not _is_pad(output_edge)  # ...and none of the pad came back
        assert np.abs(output_edge.mean(axis=0) - photo_edge.mean(axis=0)).max() < 0.05


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, "rate_limit_exceeded", TransientEngineError),
        (500, "server_error", TransientEngineError),
        (503, "server_error", TransientEngineError),
        (400, "moderation_blocked", PermanentEngineError),
        (401, "invalid_api_key", PermanentEngineError),
        (429, "insufficient_quota", PermanentEngineError),
    ],
)
async def test_errors_are_mapped_and_never_retried_by_the_client(
    engine: OpenAIEngine, fake_openai: FakeOpenAI, status: int, code: str, expected: type[Exception]
) -> None:
    fake_openai.reply = Reply(status, code)

    with pytest.raises(expected) as caught:
        await engine.enhance(request())

    assert str(status) in str(caught.value)
    assert len(fake_openai.calls) == 1


async def test_a_rate_limit_says_how_long_to_wait(engine: OpenAIEngine, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = Reply(429, headers={"Retry-After": "7"})

    with pytest.raises(TransientEngineError) as caught:
        await engine.enhance(request())

    assert (caught.value.code, caught.value.retry_after_s, caught.value.cost) == (
        "openai_rate_limited",
        7.0,
        Decimal(0),
    )


async def test_a_rate_limit_without_retry_after_leaves_the_wait_to_the_backoff(
    engine: OpenAIEngine, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply = Reply(429)

    with pytest.raises(TransientEngineError) as caught:
        await engine.enhance(request())

    assert caught.value.retry_after_s is None


async def test_an_exhausted_quota_fails_at_once_and_says_so(engine: OpenAIEngine, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = Reply(429, "insufficient_quota", headers={"Retry-After": "1"})

    with pytest.raises(PermanentEngineError) as caught:
        await engine.enhance(request())

    assert caught.value.code == "openai_quota"
    assert caught.value.message == "OpenAI quota exhausted (check the account's billing): OpenAI answered 429: fake 429"


async def test_an_unusable_answer_still_carries_what_it_was_billed(
    engine: OpenAIEngine, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reply = Reply(broken=True)

    with pytest.raises(PermanentEngineError) as caught:
        await engine.enhance(request())

    assert (caught.value.code, caught.value.cost) == ("openai_bad_output", USAGE_COST)


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 0 "}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW + 20, UTC), usegmt=True)}, 20.0),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW - 20, UTC), usegmt=True)}, 0.0),
        ({"retry-after": "86400"}, MAX_RETRY_AFTER_S),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after-ms": "inf"}, None),
    ],
)
def test_retry_after_reads_seconds_milliseconds_and_dates_within_bounds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(headers, now=NOW) == expected


async def test_a_slow_answer_is_a_transient_timeout(fake_openai: FakeOpenAI) -> None:
    fake_openai.delay = 2.0

    async with OpenAIEngine("sk-test", fake_openai.base_url, timeout=0.3) as engine:
        with pytest.raises(TransientEngineError) as caught:
            await engine.enhance(request())

    assert caught.value.code == "openai_timeout"
    assert len(fake_openai.calls) == 1


async def test_an_unreachable_server_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with OpenAIEngine("sk-test", f"http://127.0.0.1:{port}/v1", timeout=2.0) as engine:
        with pytest.raises(TransientEngineError) as caught:
            await engine.enhance(request())

    assert caught.value.code == "openai_unavailable"


async def test_a_broken_upload_fails_permanently_without_calling_openai(
    engine: OpenAIEngine, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(PermanentEngineError) as caught:
        await engine.enhance(EnhanceRequest(b"not an image", "", Tier.FREE, Style.DEFAULT))

    assert caught.value.code == "unsupported_format"
    assert fake_openai.calls == []


def _edges(pixels: photos.Pixels) -> list[photos.Pixels]:
    """The outermost row or column on each side: top, bottom, left, right."""
    return [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]


def _is_pad(line: photos.Pixels) -> bool:
    return bool(np.abs(line - np.float32(PAD[0] / 255)).max(axis=-1).mean() < 0.05)
