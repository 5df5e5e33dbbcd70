"""The structure guard: how much of a photo's geometry an edit kept, blind to its colour and tone.

Both photos are decoded small, as luminance, at one size taken from the original's aspect. Each becomes
an edge map: gradient magnitude divided by the edge strength around it, so a tone curve, a colour
shift or a local glow, which scale edges with their surroundings, cancel out, while an edge that
appears, vanishes or moves does not. The maps are compared by SSIM in small windows; windows are
pooled by region, weighted by the edge they hold, and the score is the worst region's: one pasted
tree or one painted-over window is a local change, and an average over the frame would dilute it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from shared.imaging import DEFAULT_MAX_PIXELS, Draft, open_image, upright

Plane = npt.NDArray[np.float32]

# Long edge of the common size: a window or a door is still tens of pixels wide, and a 3000 px JPEG
# decodes at 1/8 scale straight to about this size.
COMMON_LONG_EDGE = 320
_MIN_SIDE = 8
_BLUR = 1  # radius of the box blur before the gradient (a 3 x 3 box): JPEG ripple and sensor grain out
_CONTEXT = 15  # side of the neighbourhood whose mean edge strength an edge is divided by
# Added to that mean, in 8-bit levels per pixel: a constant, plus a multiple of the original's median
# gradient (in a photo mostly of flat surfaces, its grain). Grain then stays near 0 instead of being
# scaled up to look like an edge, and a denoised output does not read as lost detail.
_FLAT = 3.0
_NOISE = 2.0
_WINDOW = 7  # SSIM window side
# SSIM's stabilisers for the normalised maps, where an edge is about 1 to 4 and grain under 0.3: the
# mean term only counts where a window holds an edge in one map at least, so two grainy walls match.
_C1 = np.float32(0.5)
_C2 = np.float32(0.1)
# SSIM is pooled over regions 40 px a side (an eighth of the long edge, a house window or so), made of
# 5 x 5 blocks of 8 px and so a block apart: near a sliding window's worst region, at a fraction of its cost.
_BLOCK = 8
_SPAN = 5

# Halfway across the gap on the tuning set of tests/worker/structure_pairs.py (`python -m
# bench.structure_tuning`), rounded: the lowest score an allowed edit got there is 0.840 (the local
# engine's sky replacement in a room), the highest a misrepresenting edit got is 0.429 (a cabinet pasted
# on a lawn); 0.63 leaves margins of 0.21 and 0.20. The test set played no part in choosing it.
STRUCTURE_THRESHOLD = 0.63


def structure_score(original: bytes, output: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> float:
    """How much of ``original``'s structure ``output`` keeps, in [0, 1]; raises UnsupportedImage on bad bytes."""
    before = _luminance(original, max_pixels)
    size = common_size(before.size)
    after = _luminance(output, max_pixels)
    reference, edited = (_magnitude(_plane(image, size)) for image in (before, after))
    # One floor for both, from the original: an output with less grain must not have its flat areas amplified.
    floor = np.float32(_FLAT + _NOISE * float(np.median(reference[::2, ::2])))
    return _edge_ssim(_normalised(reference, floor), _normalised(edited, floor))


def common_size(size: tuple[int, int]) -> tuple[int, int]:
    """The original's ``size`` scaled to the common long edge, never enlarged but for a sliver's short side."""
    width, height = size
    scale = min(1.0, COMMON_LONG_EDGE / max(width, height))
    # Gradients and windows need a few pixels each way; a strip narrower than that is stretched to it.
    return max(_MIN_SIDE, round(width * scale)), max(_MIN_SIDE, round(height * scale))


def _luminance(data: bytes, max_pixels: int) -> Image.Image:
    """Upright 8-bit luminance, decoded no larger than needed for the common size."""
    image = upright(open_image(data, max_pixels=max_pixels, draft=Draft("L", COMMON_LONG_EDGE)))
    if image.mode.startswith("I"):
        # 16-bit greyscale PNGs: convert("L") would clip them to white instead of scaling.
        return Image.fromarray((np.asarray(image, dtype=np.float32) / 257).clip(0, 255).astype(np.uint8))
    return image if image.mode == "L" else image.convert("L")


def _plane(image: Image.Image, size: tuple[int, int]) -> Plane:
    # A reduced JPEG decode is already near the size; a full decode (PNG, WebP) is first reduced by 2^n.
    gap = 2.0 if max(image.size) > 4 * max(size) else None
    small = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=gap)
    # Pillow's box blur in C: JPEG blocks and sensor noise out before the gradient, edges kept.
    return np.asarray(small.filter(ImageFilter.BoxBlur(_BLUR)), dtype=np.float32)


def _magnitude(plane: Plane) -> Plane:
    gy, gx = np.gradient(plane)
    return np.asarray(np.sqrt(gx * gx + gy * gy), dtype=np.float32)


def _normalised(magnitude: Plane, floor: np.float32) -> Plane:
    """The gradient magnitude divided by the edge strength around it, plus a floor.

    The division makes an edge count by where it is, not by how strong: a tone curve or a local glow
    (dusk, a half-kept sky) scales an edge and its neighbourhood alike and cancels out.
    """
    return magnitude / (_box(magnitude, _CONTEXT) + floor)


def _edge_ssim(a: Plane, b: Plane) -> float:
    """The worst region's SSIM of the two edge maps, each window weighted by the edge it holds."""
    # Plane by plane rather than stacked: one plane at this size stays in cache, which makes it twice as fast.
    mean_a, mean_b, mean_aa, mean_bb, mean_ab = (_box(plane, _WINDOW) for plane in (a, b, a * a, b * b, a * b))
    var_a = np.maximum(mean_aa - mean_a * mean_a, 0)
    var_b = np.maximum(mean_bb - mean_b * mean_b, 0)
    cov = mean_ab - mean_a * mean_b
    ssim = ((2 * mean_a * mean_b + _C1) * (2 * cov + _C2)) / (
        (mean_a * mean_a + mean_b * mean_b + _C1) * (var_a + var_b + _C2)
    )
    # A window where either map has an edge counts by that edge: one that vanished weighs as much as one kept.
    weight = np.maximum(var_a, var_b) + _C2
    pooled = _regions(np.asarray(ssim * weight, dtype=np.float32)) / _regions(weight)
    return float(np.clip(pooled.min(), 0.0, 1.0))


def _regions(plane: Plane) -> Plane:
    """Sums over regions of ``_SPAN`` x ``_SPAN`` blocks, at a stride of one block."""
    for axis in (0, 1):
        blocks = np.add.reduceat(plane, np.arange(0, plane.shape[axis], _BLOCK), axis=axis)
        plane = _window_sum(blocks, min(_SPAN, blocks.shape[axis]), axis)
    return plane


def _box(plane: Plane, side: int) -> Plane:
    """Mean over a ``side`` x ``side`` window around each pixel (edges mirrored)."""
    half = side // 2
    padded = np.pad(plane, half, mode="symmetric")
    return _window_sum(_window_sum(padded, side, 0), side, 1) * np.float32(1 / (side * side))


def _window_sum(padded: Plane, side: int, axis: int) -> Plane:
    """Sums of ``side`` consecutive values along ``axis``, by doubling spans: a few whole-array adds.

    numpy's cumsum runs one value at a time; adding shifted copies is vectorised and, on these
    sizes, several times faster, with no running total to lose float32 precision in.
    """
    count = padded.shape[axis] - side + 1
    span, spans, start, total = 1, padded, 0, None  # spans[i] is the sum of ``span`` values from i
    for bit in range(side.bit_length()):
        if bit:
            size = spans.shape[axis]
            spans = spans[_cut(axis, 0, size - span)] + spans[_cut(axis, span, size)]
            span *= 2
        if side >> bit & 1:
            term = spans[_cut(axis, start, start + count)]
            total = term if total is None else total + term
            start += span
    assert total is not None  # side >= 1 has a set bit
    return total


def _cut(axis: int, start: int, stop: int) -> tuple[slice, ...]:
    return (slice(None),) * axis + (slice(start, stop),)
