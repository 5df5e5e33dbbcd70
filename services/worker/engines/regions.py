"""Steps that work on one region of the frame: the sky (replaced, or turned to dusk) and the lawn."""

from __future__ import annotations

import numpy as np

from services.worker.engines.pixels import (
    LUMA,
    Pixels,
    channel_max,
    channel_min,
    enlarged,
    floor,
    luma_of,
    ramp,
    shrunk,
    to_image,
    unit,
)
from services.worker.engines.styles import Adjustments

SKY_BAND = 0.6  # the sky is looked for in the top 60% of the frame only
_SKY_TOP, _SKY_HORIZON = (0.20, 0.42, 0.80), (0.68, 0.80, 0.95)
_DUSK_DEEP, _DUSK_GLOW = (0.60, 0.50, 0.62), (1.12, 0.86, 0.62)
_LAWN_GREEN = np.array([0.25, 0.55, 0.12], dtype=np.float32)
_LAWN_HUES = (45.0, 170.0)  # degrees: straw-yellow grass to blue-green; not beige walls or soil


def replace_sky(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    if adjustments.sky_replacement <= 0:
        return pixels
    mask = sky_mask(pixels)
    if mask.mean() < 0.02:
        return pixels
    rows = np.flatnonzero(mask.max(axis=1) > 0.5)
    horizon = max(int(rows.max()) if rows.size else 1, 1)
    t = np.clip(np.arange(pixels.shape[0], dtype=np.float32) / horizon, 0.0, 1.0)[:, None, None]
    sky = (1 - t) * np.array(_SKY_TOP, dtype=np.float32) + t * np.array(_SKY_HORIZON, dtype=np.float32)
    # Keep some of the old sky's light and shade so clouds survive as soft texture.
    luminance = luma_of(pixels)
    sky_mean = float((luminance * mask).sum() / mask.sum())
    texture = (luminance - np.float32(sky_mean))[..., None] * np.float32(0.5)
    blend = mask[..., None] * np.float32(adjustments.sky_replacement)
    return unit(pixels * (1 - blend) + (sky + texture) * blend)


def dusk_sky(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    if adjustments.dusk_sky <= 0:
        return pixels
    height = pixels.shape[0]
    y = np.arange(height, dtype=np.float32) / np.float32(height)
    t = np.clip(y / SKY_BAND, 0.0, 1.0)[:, None, None]
    tint = (1 - t) * np.array(_DUSK_DEEP, dtype=np.float32) + t * np.array(_DUSK_GLOW, dtype=np.float32)
    fade = np.clip((0.8 - y) / 0.2, 0.0, 1.0)[:, None, None]  # gone by 80% down the frame
    strength = np.float32(adjustments.dusk_sky) * fade * (0.35 + 0.65 * sky_mask(pixels)[..., None])
    return floor(pixels * (1 + (tint - 1) * strength))  # a window the glow pushes past 1 goes to the shoulder


def clean_lawn(pixels: Pixels, adjustments: Adjustments) -> Pixels:
    if adjustments.lawn <= 0:
        return pixels
    mask = grass_mask(pixels)[..., None]
    if float(mask.mean()) < 0.01:
        return pixels
    # Pull brightness halfway to the lawn's average too, so dry patches stop standing out.
    luminance = luma_of(pixels)[..., None]
    lawn_mean = float((luminance * mask).sum() / mask.sum())
    even = (luminance + lawn_mean) / 2
    target = _LAWN_GREEN * (even / float(_LAWN_GREEN @ LUMA))
    return unit(pixels + (target - pixels) * mask * np.float32(adjustments.lawn))


def grass_mask(pixels: Pixels) -> Pixels:
    """Soft mask of straw-yellow to green, clearly coloured areas in the lower part of the frame."""
    small = shrunk(pixels)
    red, green, blue = small[..., 0], small[..., 1], small[..., 2]
    hue = np.degrees(np.arctan2(np.sqrt(3) * (green - blue), 2 * red - green - blue)) % 360
    low, high = _LAWN_HUES
    hue_score = ramp(hue, low - 5, low + 5) * ramp(-hue, -high - 5, -high + 5)
    brightest = channel_max(small)
    chroma_score = ramp((brightest - channel_min(small)) / np.maximum(brightest, 1e-3), 0.2, 0.3)
    rows = np.arange(small.shape[0], dtype=np.float32) / small.shape[0]
    score = hue_score * chroma_score * ramp(-brightest, -0.92, -0.85) * ramp(rows, 0.35, 0.55)[:, None]
    return enlarged(to_image(score), pixels)


def sky_mask(pixels: Pixels) -> Pixels:
    """Soft mask of bright or blue-ish regions reaching down unbroken from the top edge."""
    small = shrunk(pixels)
    luminance = luma_of(small)
    blueish = ramp(small[..., 2] - small[..., 0], -0.02, 0.06) * ramp(luminance, 0.3, 0.4)
    score = np.maximum(blueish, ramp(luminance, 0.6, 0.75))
    score[int(small.shape[0] * SKY_BAND) :] = 0.0
    # A running minimum down each column: windows reflecting the sky stay out, and a soft score
    # fades instead of ending in ragged streaks where it hovers at a threshold.
    return enlarged(to_image(np.minimum.accumulate(score, axis=0)), pixels)
