"""The offline, deterministic engine: a classic photo-correction pipeline on numpy and Pillow."""

from __future__ import annotations

import asyncio
import functools
import io
import math
import struct
from collections.abc import Callable
from concurrent.futures import Executor
from decimal import Decimal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, ImageFilter

from services.worker.engines import EnhanceRequest, EnhanceResult, curves, regions
from services.worker.engines.pixels import (
    LUMA,
    Pixels,
    as_pixels,
    channel_max,
    floor,
    luma_of,
    sampled,
    to_image,
)
from services.worker.engines.styles import TIER_OUTPUT, Adjustments, TierOutput, adjustments_for
from shared.errors import PermanentEngineError, UnsupportedImage
from shared.imaging import DEFAULT_MAX_PIXELS, Draft, open_image, upright

NAME = "local"

Step = Callable[[Pixels, Adjustments], Pixels]

_SRGB = ImageCms.createProfile("sRGB")
_CAST_TOLERANCE = 0.06  # length of the vector of natural-log channel gains
_LOG_GAIN_LIMITS = (math.log(0.6), math.log(1.6))  # beyond this a "cast" is more likely the subject
_GAMMA_LIMITS = (0.45, 2.0)
_MAX_BLACK_POINT = 0.1
# The white point lands a little under 1: the brightest detail keeps room for contrast and sharpening.
_WHITE = 0.95
# What Pillow raises on hostile metadata (ICC bytes, transparency of the wrong length) after a good decode.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, struct.error)


def enhance_sync(request: EnhanceRequest, *, max_pixels: int, reduced_decode: bool = True) -> EnhanceResult:
    """Enhance one photo; raises PermanentEngineError when the bytes are not an image we accept.

    `reduced_decode=False` decodes every pixel, for measuring what the reduced decode costs in quality."""
    output = TIER_OUTPUT[request.tier]
    adjustments = adjustments_for(request.style, request.prompt)
    draft = Draft("RGB", output.long_edge) if reduced_decode else None
    image = _resized(_normalised(_decode(request.image, max_pixels, draft)), output)
    pixels = _correct(as_pixels(image), adjustments)
    final = _sharpen(to_image(pixels), adjustments)
    buffer = io.BytesIO()
    # A fresh image carries no info dict, so no EXIF (GPS, camera serial) reaches the output.
    final.save(buffer, "JPEG", quality=output.jpeg_quality, optimize=True)
    return EnhanceResult(
        image=buffer.getvalue(),
        content_type="image/jpeg",
        width=final.width,
        height=final.height,
        cost=Decimal("0"),
        engine=NAME,
    )


class LocalEngine:
    """Runs the pipeline in an executor so the event loop keeps serving the broker."""

    name: str = NAME

    def __init__(self, executor: Executor | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self._executor = executor
        self._max_pixels = max_pixels

    async def aclose(self) -> None:
        """Nothing to release: the executor belongs to the worker."""

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        loop = asyncio.get_running_loop()
        work = functools.partial(enhance_sync, request, max_pixels=self._max_pixels)
        return await loop.run_in_executor(self._executor, work)


def _decode(data: bytes, max_pixels: int, draft: Draft | None) -> Image.Image:
    """The photo, with a `draft` decoded no larger than the output needs: a JPEG at 1/2, 1/4 or 1/8 of its
    size where that still leaves the long edge (a 24 MP camera frame decodes at a quarter of its pixels)."""
    try:
        return open_image(data, max_pixels=max_pixels, draft=draft)
    except UnsupportedImage as exc:
        raise PermanentEngineError(exc.message, code=exc.code) from exc


def _normalised(image: Image.Image) -> Image.Image:
    """Upright 8-bit sRGB, or a permanent failure: the bytes decoded, so no retry would fare better."""
    try:
        return _upright_rgb(image)
    except _PILLOW_ERRORS as exc:
        raise PermanentEngineError(f"the image cannot be converted: {exc}", code="corrupt_image") from exc


def _upright_rgb(image: Image.Image) -> Image.Image:
    # Our own orientation reader: EXIF the client wrote may be unparseable or out of range; then it is ignored.
    image = _eight_bit(_to_srgb(upright(image)))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    # 16-bit greyscale PNGs decode as "I;16"/"I", which convert("RGB") clips to white instead of scaling.
    if not image.mode.startswith("I"):
        return image
    return to_image(np.asarray(image, dtype=np.float32) / np.float32(65535))


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, *_PILLOW_ERRORS):
        # A broken embedded profile is common in the wild; the pixels are still worth keeping.
        return image
    return converted or image


def _resized(image: Image.Image, output: TierOutput) -> Image.Image:
    return image.resize(output.size_for(image.width, image.height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _correct(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    for step in _STEPS:
        pixels = step(pixels, adjustments)
    return pixels


def _white_balance(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    sample = sampled(pixels)
    luminance = sample @ LUMA
    mid = sample[(luminance > 0.05) & (luminance < 0.95)]
    if adjustments.white_balance <= 0 or len(mid) < 0.05 * len(sample):
        return pixels
    # Gray-world alone is fooled by a big lawn or sky, white-patch alone by a coloured lamp: average them.
    log_gains = (_log_gains(mid.mean(axis=0)) + _log_gains(np.percentile(sample, 99, axis=0))) / 2
    # A small deviation is the scene itself (beige walls, a blue sky), not a cast: shrink towards none.
    size = float(np.linalg.norm(log_gains))
    log_gains = log_gains * max(0.0, 1 - _CAST_TOLERANCE / max(size, 1e-6))
    gains = np.exp(np.clip(log_gains * adjustments.white_balance, *_LOG_GAIN_LIMITS))
    return floor(pixels * gains.astype(np.float32))


def _log_gains(channel_means: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    return np.asarray(np.log(channel_means.mean() / np.maximum(channel_means, 1e-4)), dtype=np.float64)


def _tone(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    # Exposure, shadows and contrast are per-channel curves: composed on a fine grid, applied as one lookup.
    curve = _contrast(_lift_shadows(_expose(curves.GRID, pixels, adjustments), adjustments), adjustments)
    return curves.apply(pixels, curve)


def _expose(values: Pixels, pixels: Pixels, adjustments: Adjustments) -> Pixels:
    """The exposure curve ``pixels`` need, at ``values``."""
    # Black point from luminance, capped: a photo without true blacks is not a hazy one. White point
    # from the brightest channel, so a saturated sky or lawn is not clipped out of its hue.
    sample = sampled(pixels)
    low = min(float(np.percentile(sample @ LUMA, 0.5)), _MAX_BLACK_POINT)
    high = max(float(np.percentile(channel_max(sample), 99.5)), low + 0.25)
    scale = np.float32(_WHITE / (high - low))
    mean = min(max(float(luma_of(floor((sample - np.float32(low)) * scale)).mean()), 1e-3), 0.999)
    gamma = float(np.clip(np.log(adjustments.target_luminance) / np.log(mean), *_GAMMA_LIMITS))
    # Nothing is clipped at the top here: what passes 1 is rolled off by the shoulder at the end.
    return curves.protected_gamma(floor((values - np.float32(low)) * scale), gamma)


def _lift_shadows(values: Pixels, adjustments: Adjustments) -> Pixels:
    matte = values + np.float32(adjustments.shadow_lift) * (1 - np.minimum(values, 1)) ** 3
    return curves.recover_shadows(np.asarray(matte, dtype=np.float32), adjustments.shadows)


def _contrast(values: Pixels, adjustments: Adjustments) -> Pixels:
    # S-curve through (0, 0), (0.5, 0.5), (1, 1) with the given slope at mid-grey: no clipping.
    k = np.float32(2 * (adjustments.contrast - 1))
    within = np.minimum(values, 1)  # above white the curve would bend back; leave that to the shoulder
    return np.asarray(values - k * within * (1 - within) * (1 - 2 * within), dtype=np.float32)


def _saturate(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    luminance = luma_of(pixels)[..., None]
    return floor(luminance + (pixels - luminance) * np.float32(adjustments.saturation))


def _warm(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    w = adjustments.warmth
    gains = np.array([1 + 0.1 * w, 1 + 0.02 * w, 1 - 0.1 * w], dtype=np.float32)
    # Relative to the strongest gain: warming never raises a channel, so it cannot push a window into white.
    return floor(pixels * (gains / gains.max()))


def _sharpen(image: Image.Image, adjustments: Adjustments) -> Image.Image:
    if adjustments.sharpen <= 0:
        return image
    kernel = ImageFilter.UnsharpMask(adjustments.sharpen_radius, round(adjustments.sharpen), threshold=2)
    return image.filter(kernel)


def _shoulder(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    return curves.shoulder(pixels)


_STEPS: tuple[Step, ...] = (
    _white_balance,
    _tone,
    _saturate,
    regions.replace_sky,
    regions.dusk_sky,
    regions.clean_lawn,
    _warm,
    _shoulder,
)
