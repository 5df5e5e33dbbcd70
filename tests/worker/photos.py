"""Synthetic listing photos and the image statistics the engine tests assert on."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image

Pixels = npt.NDArray[np.float32]
Box = tuple[float, float, float, float]  # left, top, right, bottom as fractions of the frame

BLUE_SKY = ((0.42, 0.60, 0.85), (0.72, 0.80, 0.90))
OVERCAST_SKY = ((0.86, 0.87, 0.89), (0.93, 0.93, 0.94))
TUNGSTEN_CAST = (1.0, 0.85, 0.6)
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
# The shapes listing photos come in, as (width, height) of a small house().
ASPECTS: dict[str, tuple[int, int]] = {
    "4:3": (400, 300),
    "3:2": (450, 300),
    "16:9": (480, 270),
    "1:1": (300, 300),
    "3:4": (300, 400),
    "3:1 panorama": (600, 200),
}


def house(
    width: int = 400,
    height: int = 300,
    *,
    sky: tuple[tuple[float, ...], ...] = BLUE_SKY,
    patchy_lawn: bool = False,
    seed: int = 7,
) -> Pixels:
    """A detached house under a sky, with a hedge, a lawn and a path."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, horizon = (np.array(c, dtype=np.float32) for c in sky)
    t = np.clip(y / 0.45, 0.0, 1.0)
    pixels = np.broadcast_to((1 - t) * top + t * horizon, (height, width, 3)).copy()
    _fill(pixels, (0.0, 0.45, 1.0, 0.65), (0.18, 0.32, 0.15))  # hedge
    _fill(pixels, (0.0, 0.65, 1.0, 1.0), (0.30, 0.50, 0.20))  # lawn
    if patchy_lawn:
        for box in ((0.05, 0.80, 0.25, 0.92), (0.62, 0.70, 0.80, 0.80), (0.75, 0.88, 0.95, 0.98)):
            _fill(pixels, box, (0.62, 0.58, 0.30))  # dry, straw-yellow grass
    _fill(pixels, (0.15, 0.25, 0.85, 0.35), (0.30, 0.28, 0.30))  # roof
    _fill(pixels, (0.20, 0.35, 0.80, 0.78), (0.80, 0.74, 0.64))  # walls
    for box in ((0.28, 0.45, 0.40, 0.60), (0.60, 0.45, 0.72, 0.60)):
        _fill(pixels, box, (0.20, 0.26, 0.32))  # windows
    _fill(pixels, (0.46, 0.55, 0.54, 0.78), (0.45, 0.25, 0.18))  # door
    _fill(pixels, (0.45, 0.78, 0.55, 1.0), (0.60, 0.58, 0.55))  # path
    return _noisy(pixels, seed)


def room(width: int = 400, height: int = 300, *, seed: int = 11) -> Pixels:
    """A living room: white ceiling, grey walls, a bright window, a wooden floor, a blue sofa."""
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[:] = (0.75, 0.75, 0.74)
    _fill(pixels, (0.0, 0.0, 1.0, 0.2), (0.92, 0.92, 0.92))
    _fill(pixels, (0.6, 0.25, 0.85, 0.6), (0.97, 0.97, 0.98))
    _fill(pixels, (0.0, 0.7, 1.0, 1.0), (0.55, 0.40, 0.28))
    _fill(pixels, (0.1, 0.5, 0.45, 0.8), (0.35, 0.38, 0.45))
    return _noisy(pixels, seed)


# Where interior() puts its window and its unlit corner, for the tone tests and the engine report.
WINDOW: Box = (0.55, 0.12, 0.90, 0.58)
PANE: Box = (0.57, 0.40, 0.70, 0.55)  # the window's lower-left pane: foliage, no mullion
DARK_CORNER: Box = (0.0, 0.62, 0.22, 1.0)


def interior(width: int = 1024, height: int = 768, *, seed: int = 13) -> Pixels:
    """A dim room lit by a bright window with detail (pale sky, foliage, mullions) and an unlit corner.

    At the free tier's size by default, so the engine does not resize it and detail compares pixel for pixel.
    """
    pixels = np.empty((height, width, 3), dtype=np.float32)
    pixels[:] = (0.36, 0.34, 0.31)  # walls in shade
    _fill(pixels, (0.0, 0.78, 1.0, 1.0), (0.26, 0.19, 0.13))  # floor
    _fill(pixels, (0.08, 0.55, 0.42, 0.85), (0.22, 0.24, 0.30))  # sofa
    _fill(pixels, DARK_CORNER, (0.05, 0.05, 0.05))
    _view(pixels, WINDOW)
    return _noisy(pixels, seed)


def shadow_ramp(width: int = 1024, height: int = 96) -> Pixels:
    """A noiseless grey ramp from black to deep shadow: any gap in its histogram after an edit is banding."""
    x = np.linspace(0.0, 0.35, width, dtype=np.float32)
    return np.broadcast_to(x[None, :, None], (height, width, 3)).copy()


def crop(pixels: Pixels, box: Box, *, inset: float = 0.05) -> Pixels:
    """The part of ``pixels`` inside ``box``, less ``inset`` of its size on each side (edges blur when resized)."""
    height, width = pixels.shape[:2]
    left, top, right, bottom = box
    dx, dy = (right - left) * inset, (bottom - top) * inset
    rows = slice(round((top + dy) * height), round((bottom - dy) * height))
    return pixels[rows, round((left + dx) * width) : round((right - dx) * width)]


def encode(pixels: Pixels, fmt: str = "JPEG", *, exif: Image.Exif | None = None) -> bytes:
    """Encode float RGB pixels as ``fmt``, with ``exif`` attached when given."""
    image = Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": 95} if fmt == "JPEG" else {}
    if exif is not None:
        options["exif"] = exif.tobytes()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gps_exif() -> Image.Exif:
    """EXIF with a camera model and a GPS position, as a phone would write it."""
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = "Phone 15"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 7.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 42.0)
    return exif


def orientation_exif(orientation: int) -> Image.Exif:
    """EXIF that tells viewers to turn the stored pixels (6: a quarter turn clockwise)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return exif


def keeps_aspect(size: tuple[int, int], photo: tuple[int, int], long_edge: int) -> bool:
    """Whether ``size`` has ``long_edge`` as its long edge and each side the photo's, scaled, within a pixel."""
    scale = long_edge / max(photo)
    return max(size) == long_edge and all(abs(side - own * scale) <= 1 for side, own in zip(size, photo, strict=True))


def decode(data: bytes) -> Pixels:
    """Decode an image to float RGB pixels in [0, 1]."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)


def mean_luminance(pixels: Pixels) -> float:
    return float((pixels @ _LUMA).mean())


def red_blue_ratio(pixels: Pixels) -> float:
    """Mean red over mean blue: above 1 is warm, below 1 cool."""
    means = pixels.reshape(-1, 3).mean(axis=0)
    return float(means[0] / means[2])


def cast_spread(pixels: Pixels) -> float:
    """Largest gap between channel means: a colour cast widens it."""
    means = pixels.reshape(-1, 3).mean(axis=0)
    return float(means.max() - means.min())


def _fill(pixels: Pixels, box: Box, colour: tuple[float, float, float]) -> None:
    height, width = pixels.shape[:2]
    left, top, right, bottom = box
    pixels[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = colour


def _view(pixels: Pixels, box: Box) -> None:
    """The view through a window: sky over foliage, both near white, crossed by lighter-grey mullions."""
    height, width = pixels.shape[:2]
    left, top, right, bottom = box
    rows, cols = slice(round(top * height), round(bottom * height)), slice(round(left * width), round(right * width))
    y = np.linspace(0.0, 1.0, rows.stop - rows.start, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, cols.stop - cols.start, dtype=np.float32)[None, :]
    foliage = 0.05 * np.sin(40 * x + 9 * np.sin(7 * y)) * np.sin(33 * y) * (y > 0.45)
    grey = 0.93 - 0.04 * y + foliage
    view = np.stack((grey - 0.01, grey, grey + 0.005), axis=-1)
    mullion = (np.abs(x - 0.5) < 0.02) | (np.abs(y - 0.5) < 0.03)
    pixels[rows, cols] = np.where(mullion[..., None], np.float32(0.72), view)


def _noisy(pixels: Pixels, seed: int) -> Pixels:
    noise = np.random.default_rng(seed).normal(0.0, 0.015, pixels.shape).astype(np.float32)
    return np.asarray(np.clip(pixels + noise, 0.0, 1.0), dtype=np.float32)
