"""Array helpers the engine's steps share: pixels as float32 in [0, 1], masks, statistics."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

Pixels = npt.NDArray[np.float32]

# Rec. 709 luma weights; close enough on sRGB values for statistics and masks.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
MASK_SCALE = 4  # masks are found on a 4x smaller copy: less noise and 16 times less work


def luma_of(pixels: Pixels) -> Pixels:
    return pixels @ LUMA


def sampled(pixels: Pixels) -> Pixels:
    """Every 4th pixel each way: plenty for statistics, 16 times less work."""
    return pixels[::4, ::4].reshape(-1, 3)


def channel_max(pixels: Pixels) -> Pixels:
    # np.maximum over the channels beats .max(axis=-1), which reduces slowly over a length-3 axis.
    return np.maximum(np.maximum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def channel_min(pixels: Pixels) -> Pixels:
    return np.minimum(np.minimum(pixels[..., 0], pixels[..., 1]), pixels[..., 2])


def shrunk(pixels: Pixels) -> Pixels:
    return as_pixels(to_image(pixels).reduce(MASK_SCALE))


def enlarged(mask: Image.Image, like: Pixels) -> Pixels:
    return as_pixels(mask.resize((like.shape[1], like.shape[0]), Image.Resampling.BILINEAR))


def unit(values: npt.NDArray[np.floating]) -> Pixels:
    return np.asarray(np.clip(values, 0.0, 1.0), dtype=np.float32)


def floor(values: npt.NDArray[np.floating]) -> Pixels:
    """Negative values to 0, the top left open: the tone curve's shoulder, not a clip, brings it under 1."""
    return np.asarray(np.maximum(values, 0.0), dtype=np.float32)


def ramp(values: npt.NDArray[np.floating], low: float, high: float) -> Pixels:
    return unit((values - np.float32(low)) / np.float32(high - low))


def as_pixels(image: Image.Image) -> Pixels:
    return np.asarray(image, dtype=np.float32) / np.float32(255)


def to_image(values: npt.NDArray[np.floating]) -> Image.Image:
    """8-bit RGB for (h, w, 3) values in [0, 1], 8-bit grey for a (h, w) mask."""
    return Image.fromarray(np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8))
