"""A test-only engine that enhances nothing: the photo decoded and re-encoded as a JPEG, at no cost.

It measures everything around an engine (the broker, the database, storage, the worker itself), as the
drain benchmark does (bench/drain.py); the settings refuse it in production.
"""

from __future__ import annotations

import io
from decimal import Decimal

from services.worker.engines import EnhanceRequest, EnhanceResult
from shared.errors import PermanentEngineError, UnsupportedImage
from shared.imaging import DEFAULT_MAX_PIXELS, open_image

NAME = "noop"


def reencode(image: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> EnhanceResult:
    """The photo as a JPEG, pixel for pixel; a permanent failure when the bytes are not an image we accept."""
    try:
        decoded = open_image(image, max_pixels=max_pixels)
    except UnsupportedImage as exc:
        raise PermanentEngineError(exc.message, code=exc.code) from exc
    buffer = io.BytesIO()
    decoded.convert("RGB").save(buffer, "JPEG")
    return EnhanceResult(
        image=buffer.getvalue(),
        content_type="image/jpeg",
        width=decoded.width,
        height=decoded.height,
        cost=Decimal("0"),
        engine=NAME,
    )


class NoopEngine:
    """Re-encodes on the event loop itself: for the small photos it is meant for, a hop to the process
    pool would cost more than the work."""

    name: str = NAME

    def __init__(self, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._max_pixels = max_pixels

    async def aclose(self) -> None:
        """Nothing to release."""

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        return reencode(request.image, max_pixels=self._max_pixels)
