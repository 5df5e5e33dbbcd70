"""Safe probing and decoding of untrusted image bytes (sync; callers run it in an executor)."""

from __future__ import annotations

import io
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import ExifTags, Image

from shared.errors import UnsupportedImage

ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
}
DEFAULT_MAX_PIXELS = 40_000_000

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# EXIF orientations 5-8 store the picture turned a quarter: displayed width is the stored height.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
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


def open_image(data: bytes | BinaryIO, *, max_pixels: int) -> Image.Image:
    """Decode ``data`` (bytes or an open file) fully, refusing other formats, too many pixels and broken files."""
    fmt = sniff_format(_head(data))
    if fmt is None:
        raise UnsupportedImage("not a JPEG, PNG or WebP image", field="file", code="unsupported_format")
    image = _open_header(data, fmt)
    _check_pixels(image.size, max_pixels)
    try:
        image.load()
    except _DECODE_ERRORS as exc:
        raise _corrupt(fmt, exc) from exc
    return image


def probe(data: bytes | BinaryIO, *, max_pixels: int) -> ImageInfo:
    """Validate ``data`` and describe it; width and height are as displayed (EXIF orientation applied)."""
    fmt = sniff_format(_head(data)) or ""
    image = open_image(data, max_pixels=max_pixels)
    width, height = image.size
    if image.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(format=fmt, content_type=ALLOWED_FORMATS[fmt], width=width, height=height)


def _open_header(data: bytes | BinaryIO, fmt: str) -> Image.Image:
    with _WARNINGS_LOCK, warnings.catch_warnings():
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


def _too_many_pixels(detail: str) -> UnsupportedImage:
    return UnsupportedImage(f"image too large: {detail}", field="file", code="too_many_pixels")


def _corrupt(fmt: str, exc: BaseException) -> UnsupportedImage:
    return UnsupportedImage(f"{fmt} image is truncated or corrupt: {exc}", field="file", code="corrupt_image")
