"""Probing untrusted uploads: formats from magic bytes, broken files and decompression bombs refused."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import ExifTags, Image

from shared.errors import UnsupportedImage
from shared.imaging import ALLOWED_FORMATS, ImageInfo, open_image, probe, sniff_format

MAX_PIXELS = 1_000_000


def encoded(fmt: str, size: tuple[int, int] = (40, 30), exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {} if exif is None else {"exif": exif.tobytes()}
    Image.new("RGB", size, (200, 120, 40)).save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height``: a decompression bomb's calling card."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = (b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 64)), (b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(kind, body) for kind, body in chunks)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def rejection(data: bytes, max_pixels: int = MAX_PIXELS) -> UnsupportedImage:
    with pytest.raises(UnsupportedImage) as caught:
        open_image(data, max_pixels=max_pixels)
    assert caught.value.field == "file"
    return caught.value


@pytest.mark.parametrize(("fmt", "content_type"), [
    ("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"),
])
def test_format_comes_from_the_bytes(fmt: str, content_type: str) -> None:
    data = encoded(fmt)

    assert sniff_format(data[:16]) == fmt
    assert probe(data, max_pixels=MAX_PIXELS) == ImageInfo(fmt, content_type, 40, 30)
    assert ALLOWED_FORMATS[fmt] == content_type


def test_a_lying_name_or_type_changes_nothing() -> None:
    # The upload claims to be "photo.jpg", image/jpeg; only its bytes are ever consulted.
    declared_name, declared_type, data = "photo.jpg", "image/jpeg", encoded("PNG")

    info = probe(data, max_pixels=MAX_PIXELS)

    assert (info.format, info.content_type) == ("PNG", "image/png")
    assert (declared_name, declared_type) != ("photo.png", info.content_type)


@pytest.mark.parametrize("data", [
    b"just some text, not a photo\n" * 4,
    encoded("GIF"),
    encoded("BMP"),
    b"",
], ids=["text", "gif", "bmp", "empty"])
def test_other_formats_are_unsupported(data: bytes) -> None:
    assert sniff_format(data[:16]) is None
    assert rejection(data).code == "unsupported_format"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_files_are_corrupt(fmt: str) -> None:
    data = encoded(fmt, (200, 150))

    assert rejection(data[: len(data) // 2]).code == "corrupt_image"


def test_magic_bytes_followed_by_garbage_are_corrupt() -> None:
    assert rejection(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 8).code == "corrupt_image"


def test_our_pixel_cap_applies_before_decoding() -> None:
    error = rejection(encoded("PNG", (400, 300)), max_pixels=400 * 300 - 1)

    assert error.code == "too_many_pixels"


def test_a_declared_gigapixel_png_is_refused() -> None:
    assert rejection(png_header_only(100_000, 100_000), max_pixels=10**12).code == "too_many_pixels"


def test_pillows_bomb_warning_is_an_error_even_when_warnings_are_ignored() -> None:
    # 10^8 pixels: over Pillow's warning threshold, under its error threshold and under our cap.
    bomb = png_header_only(10_000, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        error = rejection(bomb, max_pixels=10**9)

    assert error.code == "too_many_pixels"


def test_global_warning_filters_are_left_as_found() -> None:
    before = list(warnings.filters)
    rejection(png_header_only(10_000, 10_000), max_pixels=10**9)
    probe(encoded("JPEG"), max_pixels=MAX_PIXELS)

    assert warnings.filters == before


def test_probe_reports_the_displayed_size_of_a_rotated_photo() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6

    info = probe(encoded("JPEG", (40, 30), exif), max_pixels=MAX_PIXELS)

    assert (info.width, info.height) == (30, 40)


def test_open_image_returns_the_decoded_pixels() -> None:
    image = open_image(encoded("PNG"), max_pixels=MAX_PIXELS)

    assert (image.format, image.size) == ("PNG", (40, 30))
    assert image.getpixel((0, 0)) == (200, 120, 40)
