"""Measures of tonal quality: clipped highlights, detail left in a region, shadow level and banding."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from services.worker.engines.pixels import Pixels, channel_max, luma_of

CLIP_LEVEL = 250 / 255  # a channel this bright holds no detail any more after JPEG
DETAIL_SCALE = 4  # pixels averaged each way before the Laplacian


def clipped_fraction(pixels: Pixels) -> float:
    """Share of the pixels with any channel at or above the clip level."""
    return float((channel_max(pixels) >= CLIP_LEVEL).mean())


def local_contrast(pixels: Pixels) -> float:
    """Mean absolute Laplacian of luminance at a quarter of the size: detail, not sensor noise or JPEG grain."""
    y = _reduced(luma_of(pixels), DETAIL_SCALE)
    laplacian = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.abs(laplacian).mean())


def mean_luminance(pixels: Pixels) -> float:
    return float(luma_of(pixels).mean())


def empty_levels(pixels: Pixels, *, below: float = 1.0) -> int:
    """Empty 8-bit luminance levels between the darkest occupied one and ``below``: banding, in a ramp."""
    counts = _level_counts(pixels, below)
    occupied = np.flatnonzero(counts)
    return int((counts[occupied[0] :] == 0).sum()) if len(occupied) else 0


def largest_gap(pixels: Pixels, *, below: float = 1.0) -> int:
    """Widest run of empty 8-bit levels between occupied ones under ``below``: a smooth ramp has none."""
    occupied = np.flatnonzero(_level_counts(pixels, below))
    return int(np.diff(occupied).max()) - 1 if len(occupied) > 1 else 0


def _level_counts(pixels: Pixels, below: float) -> npt.NDArray[np.int64]:
    levels = np.round(luma_of(pixels) * 255).astype(np.int64)
    return np.bincount(levels[levels < round(below * 255)].ravel(), minlength=round(below * 255))


def _reduced(values: Pixels, factor: int) -> Pixels:
    height, width = (side - side % factor for side in values.shape[:2])
    blocks = values[:height, :width].reshape(height // factor, factor, width // factor, factor)
    return np.asarray(blocks.mean(axis=(1, 3)), dtype=np.float32)
