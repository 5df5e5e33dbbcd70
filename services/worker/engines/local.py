"""The offline, deterministic engine: a classic photo-correction pipeline on numpy and Pillow."""

from __future__ import annotations

import asyncio
import functools
import io
import math
from collections.abc import Callable
from concurrent.futures import Executor
from decimal import Decimal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, ImageFilter, ImageOps

from services.worker.engines import EnhanceRequest, EnhanceResult
from services.worker.engines.styles import TIER_OUTPUT, Adjustments, adjustments_for
from shared.errors import PermanentEngineError, UnsupportedImage
from shared.imaging import DEFAULT_MAX_PIXELS, open_image

NAME = "local"

Pixels = npt.NDArray[np.float32]
Step = Callable[[Pixels, Adjustments], Pixels]

# Rec. 709 luma weights; close enough on sRGB values for statistics and masks.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_SRGB = ImageCms.createProfile("sRGB")
_CAST_TOLERANCE = 0.06  # length of the vector of natural-log channel gains
_LOG_GAIN_LIMITS = (math.log(0.6), math.log(1.6))  # beyond this a "cast" is more likely the subject
_GAMMA_LIMITS = (0.45, 2.0)
_MAX_BLACK_POINT = 0.1
_SKY_BAND = 0.6  # the sky is looked for in the top 60% of the frame only
_MASK_SCALE = 4  # masks are found on a 4x smaller copy: less noise and 16 times less work
_SKY_TOP, _SKY_HORIZON = (0.20, 0.42, 0.80), (0.68, 0.80, 0.95)
_DUSK_DEEP, _DUSK_GLOW = (0.60, 0.50, 0.62), (1.12, 0.86, 0.62)
_LAWN_GREEN = np.array([0.25, 0.55, 0.12], dtype=np.float32)
_LAWN_HUES = (45.0, 170.0)  # degrees: straw-yellow grass to blue-green; not beige walls or soil


def enhance_sync(request: EnhanceRequest, *, max_pixels: int) -> EnhanceResult:
    """Enhance one photo; raises PermanentEngineError when the bytes are not an image we accept."""
    output = TIER_OUTPUT[request.tier]
    adjustments = adjustments_for(request.style, request.prompt)
    image = _resize_long_edge(_upright_rgb(_decode(request.image, max_pixels)), output.long_edge)
    pixels = _correct(_as_pixels(image), adjustments)
    final = _sharpen(_to_image(pixels), adjustments)
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

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        loop = asyncio.get_running_loop()
        work = functools.partial(enhance_sync, request, max_pixels=self._max_pixels)
        return await loop.run_in_executor(self._executor, work)


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    try:
        return open_image(data, max_pixels=max_pixels)
    except UnsupportedImage as exc:
        raise PermanentEngineError(exc.message, code=exc.code) from exc


def _upright_rgb(image: Image.Image) -> Image.Image:
    image = _eight_bit(_to_srgb(ImageOps.exif_transpose(image)))
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
    return _to_image(np.asarray(image, dtype=np.float32) / np.float32(65535))


def _to_srgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        # A broken embedded profile is common in the wild; the pixels are still worth keeping.
        return image
    return converted or image


def _resize_long_edge(image: Image.Image, long_edge: int) -> Image.Image:
    width, height = image.size
    if width >= height:
        size = (long_edge, max(1, round(height * long_edge / width)))
    else:
        size = (max(1, round(width * long_edge / height)), long_edge)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _correct(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    for step in _STEPS:
        pixels = step(pixels, adjustments)
    return pixels


def _luminance(pixels: Pixels) -> Pixels:
    return pixels @ _LUMA


def _sample(pixels: Pixels) -> Pixels:
    """Every 4th pixel each way: plenty for statistics, 16 times less work."""
    return pixels[::4, ::4].reshape(-1, 3)


def _channel_max(pixels: Pixels) -> Pixels:
    # np.maximum over the channels beats .max(axis=-1), which reduces slowly over a length-3 axis.
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def _channel_min(pixels: Pixels) -> Pixels:
    return np.minimum(np.minimum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def _white_balance(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    sample = _sample(pixels)
    luminance = sample @ _LUMA
    mid = sample[(luminance > 0.05) & (luminance < 0.95)]
    if adjustments.white_balance <= 0 or len(mid) < 0.05 * len(sample):
        return pixels
    # Gray-world alone is fooled by a big lawn or sky, white-patch alone by a coloured lamp: average them.
    log_gains = (_log_gains(mid.mean(axis=0)) + _log_gains(np.percentile(sample, 99, axis=0))) / 2
    # A small deviation is the scene itself (beige walls, a blue sky), not a cast: shrink towards none.
    size = float(np.linalg.norm(log_gains))
    log_gains = log_gains * max(0.0, 1 - _CAST_TOLERANCE / max(size, 1e-6))
    gains = np.exp(np.clip(log_gains * adjustments.white_balance, *_LOG_GAIN_LIMITS))
    return _unit(pixels * gains.astype(np.float32))


def _log_gains(channel_means: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    return np.asarray(np.log(channel_means.mean() / np.maximum(channel_means, 1e-4)), dtype=np.float64)


def _expose(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    # Black point from luminance, capped: a photo without true blacks is not a hazy one. White point
    # from the brightest channel, so a saturated sky or lawn is not clipped out of its hue.
    sample = _sample(pixels)
    low = min(float(np.percentile(sample @ _LUMA, 0.5)), _MAX_BLACK_POINT)
    high = max(float(np.percentile(_channel_max(sample), 99.5)), low + 0.25)
    stretched = _unit((pixels - np.float32(low)) / np.float32(high - low))
    mean = min(max(float(_luminance(_sample(stretched)).mean()), 1e-3), 0.999)
    gamma = np.clip(np.log(adjustments.target_luminance) / np.log(mean), *_GAMMA_LIMITS)
    return _unit(np.power(stretched, np.float32(gamma)))


def _lift_shadows(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    return pixels + np.float32(adjustments.shadow_lift) * (1 - pixels) ** 3


def _contrast(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    # S-curve through (0, 0), (0.5, 0.5), (1, 1) with the given slope at mid-grey: no clipping.
    k = np.float32(2 * (adjustments.contrast - 1))
    return pixels - k * pixels * (1 - pixels) * (1 - 2 * pixels)


def _saturate(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    luminance = _luminance(pixels)[..., None]
    return _unit(luminance + (pixels - luminance) * np.float32(adjustments.saturation))


def _replace_sky(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    if adjustments.sky_replacement <= 0:
        return pixels
    mask = _sky_mask(pixels)
    if mask.mean() < 0.02:
        return pixels
    rows = np.flatnonzero(mask.max(axis=1) > 0.5)
    horizon = max(int(rows.max()) if rows.size else 1, 1)
    t = np.clip(np.arange(pixels.shape[0], dtype=np.float32) / horizon, 0.0, 1.0)[:, None, None]
    sky = (1 - t) * np.array(_SKY_TOP, dtype=np.float32) + t * np.array(_SKY_HORIZON, dtype=np.float32)
    # Keep some of the old sky's light and shade so clouds survive as soft texture.
    luminance = _luminance(pixels)
    sky_mean = float((luminance * mask).sum() / mask.sum())
    texture = (luminance - np.float32(sky_mean))[..., None] * np.float32(0.5)
    blend = mask[..., None] * np.float32(adjustments.sky_replacement)
    return _unit(pixels * (1 - blend) + (sky + texture) * blend)


def _dusk_sky(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    if adjustments.dusk_sky <= 0:
        return pixels
    height = pixels.shape[0]
    y = np.arange(height, dtype=np.float32) / np.float32(height)
    t = np.clip(y / _SKY_BAND, 0.0, 1.0)[:, None, None]
    tint = (1 - t) * np.array(_DUSK_DEEP, dtype=np.float32) + t * np.array(_DUSK_GLOW, dtype=np.float32)
    fade = np.clip((0.8 - y) / 0.2, 0.0, 1.0)[:, None, None]  # gone by 80% down the frame
    strength = np.float32(adjustments.dusk_sky) * fade * (0.35 + 0.65 * _sky_mask(pixels)[..., None])
    return _unit(pixels * (1 + (tint - 1) * strength))


def _clean_lawn(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    if adjustments.lawn <= 0:
        return pixels
    mask = _grass_mask(pixels)[..., None]
    if float(mask.mean()) < 0.01:
        return pixels
    # Pull brightness halfway to the lawn's average too, so dry patches stop standing out.
    luminance = _luminance(pixels)[..., None]
    lawn_mean = float((luminance * mask).sum() / mask.sum())
    even = (luminance + lawn_mean) / 2
    target = _LAWN_GREEN * (even / float(_LAWN_GREEN @ _LUMA))
    return _unit(pixels + (target - pixels) * mask * np.float32(adjustments.lawn))


def _grass_mask(pixels: Pixels) -> Pixels:
    """Soft mask of straw-yellow to green, clearly coloured areas in the lower part of the frame."""
    small = _shrunk(pixels)
    red, green, blue = small[..., 0], small[..., 1], small[..., 2]
    hue = np.degrees(np.arctan2(np.sqrt(3) * (green - blue), 2 * red - green - blue)) % 360
    low, high = _LAWN_HUES
    hue_score = _ramp(hue, low - 5, low + 5) * _ramp(-hue, -high - 5, -high + 5)
    brightest = _channel_max(small)
    chroma_score = _ramp((brightest - _channel_min(small)) / np.maximum(brightest, 1e-3), 0.2, 0.3)
    rows = np.arange(small.shape[0], dtype=np.float32) / small.shape[0]
    score = hue_score * chroma_score * _ramp(-brightest, -0.92, -0.85) * _ramp(rows, 0.35, 0.55)[:, None]
    return _enlarged(_to_image(score), pixels)


def _warm(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    w = adjustments.warmth
    gains = np.array([1 + 0.1 * w, 1 + 0.02 * w, 1 - 0.1 * w], dtype=np.float32)
    return _unit(pixels * gains)


def _sky_mask(pixels: Pixels) -> Pixels:
    """Soft mask of bright or blue-ish regions reaching down unbroken from the top edge."""
    small = _shrunk(pixels)
    luminance = _luminance(small)
    blueish = _ramp(small[..., 2] - small[..., 0], -0.02, 0.06) * _ramp(luminance, 0.3, 0.4)
    score = np.maximum(blueish, _ramp(luminance, 0.6, 0.75))
    score[int(small.shape[0] * _SKY_BAND) :] = 0.0
    # A running minimum down each column: windows reflecting the sky stay out, and a soft score
    # fades instead of ending in ragged streaks where it hovers at a threshold.
    return _enlarged(_to_image(np.minimum.accumulate(score, axis=0)), pixels)


def _shrunk(pixels: Pixels) -> Pixels:
    return _as_pixels(_to_image(pixels).reduce(_MASK_SCALE))


def _enlarged(mask: Image.Image, like: Pixels) -> Pixels:
    return _as_pixels(mask.resize((like.shape[1], like.shape[0]), Image.Resampling.BILINEAR))


def _unit(values: npt.NDArray[np.floating]) -> Pixels:
    return np.asarray(np.clip(values, 0.0, 1.0), dtype=np.float32)


def _ramp(values: npt.NDArray[np.floating], low: float, high: float) -> Pixels:
    return _unit((values - np.float32(low)) / np.float32(high - low))


def _as_pixels(image: Image.Image) -> Pixels:
    return np.asarray(image, dtype=np.float32) / np.float32(255)


def _to_image(values: npt.NDArray[np.floating]) -> Image.Image:
    """8-bit RGB for (h, w, 3) values in [0, 1], 8-bit grey for a (h, w) mask."""
    return Image.fromarray(np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8))


def _sharpen(image: Image.Image, adjustments: Adjustments) -> Image.Image:
    if adjustments.sharpen <= 0:
        return image
    kernel = ImageFilter.UnsharpMask(adjustments.sharpen_radius, round(adjustments.sharpen), threshold=2)
    return image.filter(kernel)


_STEPS: tuple[Step, ...] = (
    _white_balance,
    _expose,
    _lift_shadows,
    _contrast,
    _saturate,
    _replace_sky,
    _dusk_sky,
    _clean_lawn,
    _warm,
)
