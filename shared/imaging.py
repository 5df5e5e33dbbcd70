"""Safe probing and decoding of untrusted image bytes (sync; callers run it in an executor)."""

from __future__ import annotations

import io
import math
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import ExifTags, Image, UnidentifiedImageError

from shared.errors import UnsupportedImage
from shared.jpeg_structure import BrokenJpeg, check_whole, first_rows

ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}
DEFAULT_MAX_PIXELS = 40_000_000
# A side this long is a panorama strip or a hostile header, not a listing photo; the api's defaults.
DEFAULT_MAX_SIDE = 12_000
DEFAULT_MAX_ASPECT_RATIO = 20.0

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# EXIF orientations 5-8 store the picture turned a quarter: displayed width is the stored height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
# How to turn the stored pixels upright, per EXIF orientation (1, "as stored", needs nothing).
_TRANSPOSES: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Pillow's decoders raise many unrelated types on hostile input; all of them mean "broken file" to us.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)
# catch_warnings swaps the process-wide filter list; serialising our own uses keeps two threads
# from restoring each other's filters and leaking an "error" filter into the rest of the process.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageInfo:
    """What an accepted upload is: format and displayed size."""

    format: str
    content_type: str
    width: int
    height: int


def sniff_format(head: bytes) -> str | None:
    """Name the Pillow format of an allowed image from its first bytes, ignoring any declared type."""
    if head.startswith(_JPEG_MAGIC):
        return "JPEG"
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _head(data: bytes | BinaryIO) -> bytes:
    if isinstance(data, bytes):
        return data[:16]
    data.seek(0)
    head = data.read(16)
    data.seek(0)
    return head


@dataclass(frozen=True)
class Draft:
    """Decode a JPEG no larger than a `long_edge` needs, in `mode`: libjpeg scales by 1/2, 1/4 or 1/8 as it
    decodes, several times cheaper than decoding every pixel and resizing. Other formats decode in full.
    `mode` None keeps the mode the file is stored in."""

    mode: str | None
    long_edge: int


_SMALLEST = Draft(None, 1)  # libjpeg's smallest scale, 1/8


def open_image(
    data: bytes | BinaryIO,
    *,
    max_pixels: int,
    max_side: int | None = None,
    max_aspect_ratio: float | None = None,
    draft: Draft | None = None,
) -> Image.Image:
    """Decode ``data`` (bytes or an open file) fully, refusing other formats, too many pixels and broken files.

    Every size cap is checked against the dimensions the header declares, before one pixel is decoded.
    """
    fmt, image = _open_within_caps(data, max_pixels=max_pixels, max_side=max_side, max_aspect_ratio=max_aspect_ratio)
    if draft is not None and fmt == "JPEG":
        scale = draft.long_edge / max(image.size)
        image.draft(draft.mode or image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    _load(image, fmt)
    return image


def _open_within_caps(
    data: bytes | BinaryIO, *, max_pixels: int, max_side: int | None, max_aspect_ratio: float | None
) -> tuple[str, Image.Image]:
    """The format and the opened (not decoded) image, its declared size within every cap."""
    fmt = sniff_format(_head(data))
    if fmt is None:
        raise UnsupportedImage("not a JPEG, PNG or WebP image", field="file", code="unsupported_format")
    image = _open_header(data, fmt)
    _check_pixels(image.size, max_pixels)
    _check_shape(image.size, max_side, max_aspect_ratio)
    return fmt, image


def _load(image: Image.Image, fmt: str) -> None:
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise _corrupt(fmt, exc) from exc


def _check_jpeg(data: bytes, *, max_pixels: int) -> None:
    """Refuse what decoding the whole JPEG would refuse, for an eighth of its CPU: its structure (a whole
    file, not a truncated one), then libjpeg's own reading of its headers and first rows (broken Huffman
    tables, components or sampling factors); shared/jpeg_structure.py does both. Damage inside the compressed
    data passes both, as it passes a whole decode (libjpeg warns and fills the blocks in)."""
    try:
        layout = check_whole(data)
    except BrokenJpeg as exc:
        raise _corrupt("JPEG", exc) from exc
    open_image(first_rows(data, layout), max_pixels=max_pixels, draft=_SMALLEST)


def _bytes_of(data: bytes | BinaryIO) -> bytes:
    if isinstance(data, bytes):
        return data
    data.seek(0)
    whole = data.read()
    data.seek(0)
    return whole


def probe(
    data: bytes | BinaryIO, *, max_pixels: int, max_side: int | None = None, max_aspect_ratio: float | None = None
) -> ImageInfo:
    """Validate ``data`` and describe it; width and height are as displayed (EXIF orientation applied).

    A JPEG is checked without decoding every block (_check_jpeg), a PNG or WebP by decoding it: their
    decoders check the compressed data (zlib's checksum, VP8's partitions), where libjpeg only warns.
    """
    fmt, image = _open_within_caps(data, max_pixels=max_pixels, max_side=max_side, max_aspect_ratio=max_aspect_ratio)
    if fmt == "JPEG":
        _check_jpeg(_bytes_of(data), max_pixels=max_pixels)
    else:
        _load(image, fmt)
    width, height = image.size
    if orientation(image) in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(format=fmt, content_type=ALLOWED_FORMATS[fmt], width=width, height=height)


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); unreadable or out-of-range metadata counts as absent, that is 1.

    EXIF is parsed lazily, from bytes the client chose: a PNG eXIf chunk or WebP EXIF chunk that is not
    TIFF raises from getexif(), and a tag may hold any type (text, a rational, a tuple, 65535).
    """
    # Pillow also warns about EXIF it half reads; that is absent metadata too, not news for the log.
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = image.getexif().get(ExifTags.Base.Orientation)
        except _DECODE_ERRORS:
            return 1
    return value if type(value) is int and 1 <= value <= 8 else 1


def upright(image: Image.Image) -> Image.Image:
    """The pixels turned as the EXIF orientation says; ``info`` (the ICC profile) comes along unchanged."""
    transpose = _TRANSPOSES.get(orientation(image))
    return image.transpose(transpose) if transpose is not None else image


def _open_header(data: bytes | BinaryIO, fmt: str) -> Image.Image:
    with _WARNINGS_LOCK, warnings.catch_warnings():
        # Header parsing warns about odd metadata it skips (ignored: the pixels decide), and about bombs.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=[fmt])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels(str(exc)) from exc
        except _DECODE_ERRORS as exc:
            raise _corrupt(fmt, exc) from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise _too_many_pixels(f"{width}x{height} is more than {max_pixels} pixels")


def _check_shape(size: tuple[int, int], max_side: int | None, max_aspect_ratio: float | None) -> None:
    width, height = size
    if max_side is not None and max(width, height) > max_side:
        raise UnsupportedImage(
            f"image too large: {width}x{height} has a side longer than {max_side} pixels",
            field="file",
            code="side_too_long",
        )
    if max_aspect_ratio is not None and max(width, height) > max_aspect_ratio * max(min(width, height), 1):
        raise UnsupportedImage(
            f"image too narrow: {width}x{height} is more elongated than {max_aspect_ratio:g}:1",
            field="file",
            code="extreme_aspect_ratio",
        )


def _too_many_pixels(detail: str) -> UnsupportedImage:
    return UnsupportedImage(f"image too large: {detail}", field="file", code="too_many_pixels")


def _corrupt(fmt: str, exc: BaseException) -> UnsupportedImage:
    # Pillow's "cannot identify image file" names the file object it read (its repr: a memory address, or a
    # temporary file's path on this host): nothing a client should see.
    detail = "its header cannot be read" if isinstance(exc, UnidentifiedImageError) else exc
    return UnsupportedImage(f"{fmt} image is truncated or corrupt: {detail}", field="file", code="corrupt_image")
