"""Probing untrusted uploads: formats from magic bytes, broken files and decompression bombs refused."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import warnings
import zlib

import pytest
from PIL import ExifTags, Image

from shared.errors import UnsupportedImage
from shared.imaging import ALLOWED_FORMATS, ImageInfo, open_image, orientation, probe, sniff_format, upright

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


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
    ],
)
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


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not a photo\n" * 4,
        encoded("GIF"),
        encoded("BMP"),
        b"",
    ],
    ids=["text", "gif", "bmp", "empty"],
)
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


def exif_block(orientation: bytes) -> bytes:
    """A little-endian TIFF block holding one Orientation entry with the given type and value fields."""
    return b"II*\x00\x08\x00\x00\x00\x01\x00\x12\x01" + orientation + b"\x00\x00\x00\x00"


@pytest.mark.parametrize(
    "exif",
    [
        b"\xde\xad\xbe\xef" * 8,  # not TIFF: getexif() raises SyntaxError
        b"II*\x00",  # a TIFF header and nothing after it: struct.error
        exif_block(b"\x03\x00\x01\x00\x00\x00\x09\x00\x00\x00"),  # SHORT 9: out of range
        exif_block(b"\x03\x00\x01\x00\x00\x00\xff\xff\x00\x00"),  # SHORT 65535
        exif_block(b"\x02\x00\x02\x00\x00\x00\x36\x00\x00\x00"),  # ASCII "6"
    ],
    ids=["not TIFF", "header only", "9", "65535", "text"],
)
@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_unreadable_or_out_of_range_orientation_counts_as_absent(fmt: str, exif: bytes) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(buffer, fmt, exif=exif)

    info = probe(buffer.getvalue(), max_pixels=MAX_PIXELS)
    image = open_image(buffer.getvalue(), max_pixels=MAX_PIXELS)

    assert (info.width, info.height) == (40, 30)
    assert orientation(image) == 1
    assert upright(image).size == (40, 30)


@pytest.mark.parametrize(("value", "size"), [(1, (40, 30)), (3, (40, 30)), (6, (30, 40)), (8, (30, 40))])
def test_upright_turns_the_pixels_as_a_valid_orientation_says(value: int, size: tuple[int, int]) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = value
    image = open_image(encoded("JPEG", (40, 30), exif), max_pixels=MAX_PIXELS)

    assert orientation(image) == value
    assert upright(image).size == size


@pytest.mark.parametrize(
    ("size", "code"),
    [((12_001, 100), "side_too_long"), ((100, 12_001), "side_too_long"), ((2_100, 100), "extreme_aspect_ratio")],
)
def test_side_and_aspect_ratio_are_capped_from_the_header(size: tuple[int, int], code: str) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        open_image(png_header_only(*size), max_pixels=10**9, max_side=12_000, max_aspect_ratio=20)

    assert caught.value.code == code


def test_shapes_within_the_caps_pass() -> None:
    image = open_image(encoded("PNG", (400, 20)), max_pixels=MAX_PIXELS, max_side=400, max_aspect_ratio=20)

    assert image.size == (400, 20)


PEAK_MEMORY = """
import resource, sys
from shared.imaging import probe
data = sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    probe(data, max_pixels=10**9, max_side=12_000, max_aspect_ratio=20)
except Exception as error:
    print(getattr(error, "code", repr(error)))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_small_file_declaring_a_huge_image_costs_no_memory(fmt: str) -> None:
    # 20 000 x 4 000 is 80 M pixels: under Pillow's own bomb warning, 240 MB as RGB if it were decoded.
    data = png_header_only(20_000, 4_000) if fmt == "PNG" else jpeg_declaring(20_000, 4_000)
    assert len(data) < 100_000

    # A fresh process of its own, so its peak resident size measures this probe and nothing else.
    run = subprocess.run([sys.executable, "-c", PEAK_MEMORY], input=data, capture_output=True, check=True, timeout=60)
    code, grown_kib = run.stdout.decode().split()

    assert code == "side_too_long"
    assert int(grown_kib) < 20 * 1024


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header says `width` x `height`."""
    jpeg = bytearray(encoded("JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)
