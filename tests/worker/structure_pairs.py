"""Before/after pairs for the structure guard: edits a listing may show, and edits that misrepresent.

Two disjoint sets from the scenes of photos.py. ``tuning_pairs()`` is the only input to the choice of
STRUCTURE_THRESHOLD (bench/structure_tuning.py); ``held_out_pairs()`` checks it on other scenes (seeds,
sizes, aspects) with other edit parameters and positions, so the threshold is not graded on its own data.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from shared.domain import Style, Tier
from shared.imaging import DEFAULT_MAX_PIXELS
from tests.worker import photos
from tests.worker.photos import Box, Pixels

Edit = Callable[[Pixels], Pixels]
# The walls of photos.py's scenes, which a removed or moved window is painted over with, and room()'s window.
WALL = (0.80, 0.74, 0.64)
ROOM_WALL = (0.75, 0.75, 0.74)
ROOM_WINDOW: Box = (0.6, 0.25, 0.85, 0.6)
SHADE = (0.36, 0.34, 0.31)
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class Pair:
    """One original and one edit of it, and whether the guard should let the edit through."""

    name: str
    original: bytes
    edited: bytes
    expect_pass: bool


@dataclass(frozen=True)
class Scene:
    """A generated photo and where its wall, its window and its floor are."""

    name: str
    pixels: Pixels
    wall: tuple[float, float, float]
    window: Box  # the fixture the removal and move edits act on
    stand: float  # height, as a share of the frame, where pasted objects stand
    enhanced: bool = True  # whether the local engine's outputs of it are in the set (the slow part)


# --- edits a listing may show: tone, colour, noise, encoding, resolution -------------------------------


def exposure(gain: float) -> Edit:
    """Brighter (``gain`` > 1) with the highlights rolled off, not clipped, as an editor does; or darker."""
    if gain <= 1:
        return lambda p: np.clip(p * np.float32(gain), 0, 1)
    return lambda p: 1 - (1 - np.clip(p, 0, 1)) ** np.float32(gain)


def gamma(value: float) -> Edit:
    return lambda p: np.clip(p, 0, 1) ** np.float32(value)


def contrast(slope: float) -> Edit:
    """An S-curve through black, mid-grey and white with ``slope`` at mid-grey: nothing clipped."""
    k = np.float32(2 * (slope - 1))
    return lambda p: np.clip(p - k * p * (1 - p) * (1 - 2 * p), 0, 1)


def white_balance(gains: tuple[float, float, float]) -> Edit:
    return lambda p: np.clip(p * np.array(gains, dtype=np.float32), 0, 1)


def saturation(factor: float) -> Edit:
    def edit(p: Pixels) -> Pixels:
        grey = (p @ _LUMA)[..., None]
        return np.clip(grey + (p - grey) * np.float32(factor), 0, 1)

    return edit


def hue(degrees: float) -> Edit:
    """Rotate hue about the grey axis (luminance roughly kept)."""
    angle = np.radians(degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    k = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rotation = (cos * np.eye(3) + sin * cross + (1 - cos) * np.outer(k, k)).astype(np.float32)
    return lambda p: np.clip(p @ rotation.T, 0, 1)


def filtered(kernel: ImageFilter.Filter) -> Edit:
    return lambda p: _pixels(_image(p).filter(kernel))


# --- edits that misrepresent: objects added, removed or moved, the geometry warped ---------------------


def paint(box: Box, colour: tuple[float, float, float], seed: int = 1) -> Edit:
    """Paint ``box`` over with ``colour`` plus a little noise, as an inpainting would fill a wall."""

    def edit(p: Pixels) -> Pixels:
        out = p.copy()
        rows, cols = _slices(out, box)
        patch = out[rows, cols]
        noise = np.random.default_rng(seed).normal(0, 0.012, patch.shape).astype(np.float32)
        out[rows, cols] = np.clip(np.array(colour, dtype=np.float32) + noise, 0, 1)
        return out

    return edit


def move(box: Box, dx: float, dy: float, fill: tuple[float, float, float]) -> Edit:
    """Cut the contents of ``box``, fill the hole with ``fill`` and paste them ``dx``, ``dy`` away."""

    def edit(p: Pixels) -> Pixels:
        rows, cols = _slices(p, box)
        patch = p[rows, cols].copy()
        out = paint(box, fill)(p)
        left, top, right, bottom = box
        rows, cols = _slices(out, (left + dx, top + dy, right + dx, bottom + dy))
        out[rows, cols] = patch[: rows.stop - rows.start, : cols.stop - cols.start]
        return out

    return edit


def tree(x: float, base: float, size: float) -> Edit:
    """A tree or bush ``size`` of the frame tall: a textured canopy on a trunk, standing at (``x``, ``base``)."""

    def edit(p: Pixels) -> Pixels:
        out = p.copy()
        height, width = out.shape[:2]
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        cx, cy, r = x * width, (base - size) * height, size * height * 0.6
        trunk = (np.abs(xx - cx) < r * 0.15) & (yy > cy) & (yy < base * height)
        canopy = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        out[trunk] = (0.30, 0.20, 0.12)
        leaves = 0.06 * np.sin(xx * 0.9) * np.sin(yy * 1.1)
        green = np.stack((0.12 + leaves, 0.30 + leaves, 0.10 + leaves), axis=-1)
        out[canopy] = green[canopy]
        return out

    return edit


def furniture(box: Box, colour: tuple[float, float, float]) -> Edit:
    """A cabinet or table: a block with a darker top edge and two legs under it."""

    def edit(p: Pixels) -> Pixels:
        left, top, right, bottom = box
        legs, leg = bottom + (bottom - top) * 0.4, (right - left) * 0.08
        dark = (colour[0] * 0.5, colour[1] * 0.5, colour[2] * 0.5)
        out = paint(box, colour)(p)
        out = paint((left, top, right, top + (bottom - top) * 0.15), dark)(out)
        out = paint((left, bottom, left + leg, legs), dark)(out)
        return paint((right - leg, bottom, right, legs), dark)(out)

    return edit


def keystone(amount: float) -> Edit:
    """A perspective warp: the top edge pulled in by ``amount`` of the width on each side."""

    def edit(p: Pixels) -> Pixels:
        image = _image(p)
        width, height = image.size
        inset = amount * width
        quad = (inset, 0.0, 0.0, float(height), float(width), float(height), width - inset, 0.0)
        return _pixels(image.transform(image.size, Image.Transform.QUAD, quad, Image.Resampling.BILINEAR))

    return edit


def recrop(share: float, x: float = 0.5, y: float = 0.5) -> Edit:
    """Keep ``share`` of each side around (``x``, ``y``) and scale it back up to the full frame."""

    def edit(p: Pixels) -> Pixels:
        image = _image(p)
        width, height = image.size
        w, h = width * share, height * share
        left, top = (width - w) * x, (height - h) * y
        crop = image.resize(image.size, Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
        return _pixels(crop)

    return edit


def resized(scale: float) -> Edit:
    """The same frame at another resolution, the aspect kept within a pixel."""

    def edit(p: Pixels) -> Pixels:
        image = _image(p)
        size = (round(image.width * scale), round(image.height * scale))
        return _pixels(image.resize(size, Image.Resampling.LANCZOS))

    return edit


def then(*edits: Edit) -> Edit:
    """The edits applied in order: a generative edit moves structure and re-lights at once."""

    def edit(p: Pixels) -> Pixels:
        for step in edits:
            p = step(p)
        return p

    return edit


# --- the two sets --------------------------------------------------------------------------------------

SceneEdit = Callable[[Scene], Edit]


def removed(scene: Scene) -> Edit:
    """The scene's window painted over with its wall."""
    return paint(scene.window, scene.wall)


def moved(dx: float, dy: float) -> SceneEdit:
    return lambda scene: move(scene.window, dx, dy, scene.wall)


def pasted_tree(x: float, size: float) -> SceneEdit:
    return lambda scene: tree(x, scene.stand, size)


def pasted_furniture(x: float, width: float, colour: tuple[float, float, float]) -> SceneEdit:
    def edit(scene: Scene) -> Edit:
        height = width * 0.6
        top = scene.stand - height * 1.4
        return furniture((x, top, x + width, top + height), colour)

    return edit


def tuning_pairs(*, engine: bool = True) -> list[Pair]:
    """The pairs STRUCTURE_THRESHOLD is chosen on, and nothing else."""
    scenes = (
        Scene("house 800x600 s7", photos.house(800, 600, seed=7), WALL, (0.28, 0.45, 0.40, 0.60), 0.95),
        Scene("room 640x480 s11", photos.room(640, 480, seed=11), ROOM_WALL, ROOM_WINDOW, 0.92),
        Scene("interior 800x600 s13", photos.interior(800, 600, seed=13), SHADE, photos.WINDOW, 0.95),
    )
    passing: list[tuple[str, Edit]] = [
        ("brighter x1.3", exposure(1.3)),
        ("darker x0.7", exposure(0.7)),
        ("gamma 0.7", gamma(0.7)),
        ("contrast 1.3", contrast(1.3)),
        ("warmer wb", white_balance((1.08, 1.0, 0.88))),
        ("saturation 1.4", saturation(1.4)),
        ("hue +20", hue(20)),
        ("median 3", filtered(ImageFilter.MedianFilter(3))),
        ("unsharp 2/120", filtered(ImageFilter.UnsharpMask(2, 120, 2))),
        ("jpeg q70", lambda p: photos.decode(_jpeg(p, 70))),
        ("resized x0.6", resized(0.6)),
    ]
    flagged: list[tuple[str, SceneEdit]] = [
        ("tree pasted", lambda s: then(pasted_tree(0.3, 0.3)(s), exposure(1.1))),
        ("cabinet pasted", pasted_furniture(0.62, 0.2, (0.45, 0.30, 0.20))),
        ("window removed", removed),
        ("window moved", moved(-0.2, 0.05)),
        ("keystone 6%", lambda s: keystone(0.06)),
        ("crop 80%", lambda s: recrop(0.8)),
    ]
    return _pairs(scenes, passing, flagged, engine=engine)


def held_out_pairs(*, engine: bool = True) -> list[Pair]:
    """Other scenes and other edits than tuning_pairs(): what the tests grade the threshold on."""
    scenes = (
        Scene("house 600x400 s21", photos.house(600, 400, seed=21), WALL, (0.60, 0.45, 0.72, 0.60), 0.9),
        # The engine's outputs of two scenes suffice for the tests, and each output costs a quarter second.
        Scene("room 360x480 s23", photos.room(360, 480, seed=23), ROOM_WALL, ROOM_WINDOW, 0.95, enhanced=False),
        Scene("interior 640x360 s29", photos.interior(640, 360, seed=29), SHADE, photos.WINDOW, 0.92),
    )
    passing: list[tuple[str, Edit]] = [
        ("brighter x1.2", exposure(1.2)),
        ("darker x0.8", exposure(0.8)),
        ("gamma 1.4", gamma(1.4)),
        ("contrast 0.8", contrast(0.8)),
        ("cooler wb", white_balance((0.9, 1.0, 1.1))),
        ("saturation 0.6", saturation(0.6)),
        ("hue -30", hue(-30)),
        ("gaussian 0.8", filtered(ImageFilter.GaussianBlur(0.8))),
        ("unsharp 1.5/80", filtered(ImageFilter.UnsharpMask(1.5, 80, 3))),
        ("jpeg q50", lambda p: photos.decode(_jpeg(p, 50))),
        ("resized x1.5", resized(1.5)),
    ]
    flagged: list[tuple[str, SceneEdit]] = [
        ("bush pasted", lambda s: then(pasted_tree(0.75, 0.2)(s), gamma(0.85))),
        ("table pasted", pasted_furniture(0.15, 0.25, (0.30, 0.22, 0.16))),
        ("window removed + brighter", lambda s: then(removed(s), exposure(1.15))),
        ("window moved right, up", moved(0.12, -0.08)),
        ("keystone 4% + warmer", lambda s: then(keystone(0.04), white_balance((1.05, 1.0, 0.92)))),
        ("crop 85% low left", lambda s: recrop(0.85, 0.2, 0.8)),
    ]
    return _pairs(scenes, passing, flagged, engine=engine)


def engine_pairs(scene: Pixels, name: str) -> list[Pair]:
    """The local engine's own output for each style and tier: the guard must always let these through."""
    original = photos.encode(scene)
    pairs = []
    for style in Style:
        for tier in Tier:
            request = EnhanceRequest(image=original, prompt="", tier=tier, style=style)
            result = enhance_sync(request, max_pixels=DEFAULT_MAX_PIXELS)
            pairs.append(Pair(f"{name}: local {style} {tier}", original, result.image, expect_pass=True))
    return pairs


def _pairs(
    scenes: tuple[Scene, ...], passing: list[tuple[str, Edit]], flagged: list[tuple[str, SceneEdit]], *, engine: bool
) -> list[Pair]:
    """Each edit of each scene, and with ``engine`` the local engine's outputs (the slow part) too."""
    pairs = []
    for scene in scenes:
        original = photos.encode(scene.pixels)
        for name, edit in passing:
            pairs.append(Pair(f"{scene.name}: {name}", original, _jpeg(edit(scene.pixels)), expect_pass=True))
        for name, scene_edit in flagged:
            edited = _jpeg(scene_edit(scene)(scene.pixels))
            pairs.append(Pair(f"{scene.name}: {name}", original, edited, expect_pass=False))
        if engine and scene.enhanced:
            pairs.extend(engine_pairs(scene.pixels, scene.name))
    return pairs


def _slices(pixels: Pixels, box: Box) -> tuple[slice, slice]:
    height, width = pixels.shape[:2]
    left, top, right, bottom = (min(max(v, 0.0), 1.0) for v in box)
    return slice(round(top * height), round(bottom * height)), slice(round(left * width), round(right * width))


def _image(pixels: Pixels) -> Image.Image:
    return Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def _pixels(image: Image.Image) -> Pixels:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)


def _jpeg(pixels: Pixels, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    _image(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
