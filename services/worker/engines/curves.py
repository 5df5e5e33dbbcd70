"""Tone curves that keep highlight detail and lift shadows smoothly; values may pass 1 until the shoulder."""

from __future__ import annotations

import numpy as np

from services.worker.engines.pixels import Pixels

# Above the knee the gamma fades out: a bright window keeps its own tones instead of being pushed into white.
HIGHLIGHT_KNEE = 0.45
# The shoulder is the identity up to here and reaches 1 at 2 - knee with zero slope: no hard clip.
SHOULDER_KNEE = 0.92
_SHADOW_PEAK = 0.2  # the shadow curve p * (1 - p) ** 4 peaks here
_SHADOW_NORM = np.float32(1 / (_SHADOW_PEAK * (1 - _SHADOW_PEAK) ** 4))
# Curves are composed on this grid, 1/16 of an 8-bit level apart, and applied as one lookup. Values above 1
# (a white balance gain, a bright window before the shoulder) fit: the grid runs to 2.
GRID_TOP = 2.0
GRID = np.linspace(0.0, GRID_TOP, 8192, dtype=np.float32)
_STEPS_PER_UNIT = (len(GRID) - 1) / GRID_TOP
# A fixed tile of sub-level dither: each 8-bit input level is spread over its own width before the lookup,
# so a curve steeper than 1 in the shadows leaves no empty levels (banding) behind. Fixed: same photo, same bytes.
_TILE = 64
_DITHER = (np.random.default_rng(0x1757).random((_TILE, _TILE, 3), dtype=np.float32) - np.float32(0.5)) * np.float32(
    _STEPS_PER_UNIT / 255
) + np.float32(0.5)


def protected_gamma(pixels: Pixels, gamma: float) -> Pixels:
    """``pixels ** gamma`` in the shadows and mid-tones, fading to the identity towards white and beyond."""
    powered = np.power(pixels, np.float32(gamma))
    t = np.clip((pixels - np.float32(HIGHLIGHT_KNEE)) / np.float32(1 - HIGHLIGHT_KNEE), 0.0, 1.0)
    return np.asarray(powered + t * t * (3 - 2 * t) * (pixels - powered), dtype=np.float32)


def recover_shadows(pixels: Pixels, amount: float) -> Pixels:
    """Raise dark tones by up to ``amount`` (at 0.2) with black kept black and a smooth, monotone curve."""
    if amount <= 0:
        return pixels
    bump = pixels * (1 - np.minimum(pixels, 1)) ** 4 * _SHADOW_NORM
    return np.asarray(pixels + np.float32(amount) * bump, dtype=np.float32)


def shoulder(pixels: Pixels) -> Pixels:
    """Roll values above the knee smoothly into [knee, 1] instead of clipping them at 1."""
    knee = np.float32(SHOULDER_KNEE)
    over = np.clip(pixels - knee, 0.0, 2 * (1 - knee))
    return np.asarray(np.minimum(pixels, knee) + over - over * over / (4 * (1 - knee)), dtype=np.float32)


def apply(pixels: Pixels, curve: Pixels) -> Pixels:
    """``curve`` (sampled on GRID) applied to every channel of the dequantised ``pixels``."""
    height, width = pixels.shape[:2]
    reps = (-(-height // _TILE), -(-width // _TILE), 1)
    index = pixels * np.float32(_STEPS_PER_UNIT) + np.tile(_DITHER, reps)[:height, :width]
    np.clip(index, 0, len(GRID) - 1, out=index)
    return np.asarray(curve.take(index.astype(np.intp)), dtype=np.float32)
