"""Photos a hostile or careless client sends: good pixels with broken metadata, and headers that lie about size.

Each builder starts from a real photo (tests/worker/photos.py) and changes only what it names, so an
answer other than "accepted, metadata ignored" or a deliberate 415 points at the metadata handling.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

from tests.worker.photos import encode, house

WIDTH, HEIGHT = 64, 48
ORIENTATION = 0x0112
EXIF_IFD = 0x8769
# TIFF field types: 2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL.
ASCII, SHORT, LONG, RATIONAL = 2, 3, 4, 5

Entry = tuple[int, int, int, bytes]  # tag, type, count, the 4-byte value or offset field


def tiff(entries: list[Entry], *, ifd_offset: int = 8, extra: bytes = b"") -> bytes:
    """A little-endian TIFF header with one IFD, as EXIF is stored; `extra` follows the IFD."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")
    return b"II" + struct.pack("<HI", 42, ifd_offset) + body + struct.pack("<I", 0) + extra


def orientation_tiff(value: int, kind: int = SHORT) -> bytes:
    return tiff([(ORIENTATION, kind, 1, struct.pack("<H", value))])


GARBAGE = b"\xde\xad\xbe\xef" * 8
# An IFD said to start 4 GB into a 40-byte block, and an ASCII orientation.
FAR_IFD = tiff([], ifd_offset=0xFFFFFFF0)
TEXT_ORIENTATION = tiff([(ORIENTATION, ASCII, 4, b"six\x00")])
# The EXIF sub-IFD pointer aimed back at the first IFD: a loop for a naive reader.
LOOPING_IFD = tiff([(EXIF_IFD, LONG, 1, struct.pack("<I", 8))])


def _pixels() -> Image.Image:
    return Image.open(io.BytesIO(encode(house(WIDTH, HEIGHT), "PNG"))).convert("RGB")


def jpeg_with_segment(marker: int, payload: bytes) -> bytes:
    """A JPEG with one extra APPn segment right after SOI."""
    jpeg = encode(house(WIDTH, HEIGHT))
    return jpeg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def jpeg_exif(exif: bytes) -> bytes:
    return jpeg_with_segment(0xE1, b"Exif\x00\x00" + exif)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_with_chunk(kind: bytes, body: bytes, *, after_pixels: bool = False) -> bytes:
    """A PNG with one extra chunk, after IHDR (read when opened) or before IEND (read when decoded)."""
    png = encode(house(WIDTH, HEIGHT), "PNG")
    at = len(png) - 12 if after_pixels else 33  # IEND is the last 12 bytes; IHDR ends at byte 33
    return png[:at] + png_chunk(kind, body) + png[at:]


def webp_with(**metadata: bytes) -> bytes:
    """A WebP whose EXIF or ICC chunk holds exactly the given bytes (Pillow writes them unchecked)."""
    buffer = io.BytesIO()
    _pixels().save(buffer, "WEBP", **metadata)
    return buffer.getvalue()


def jpeg_with_icc(profile: bytes) -> bytes:
    buffer = io.BytesIO()
    _pixels().save(buffer, "JPEG", icc_profile=profile)
    return buffer.getvalue()


def broken_icc() -> bytes:
    """An ICC profile with a plausible header size field and nothing valid after it."""
    return struct.pack(">I", 400) + b"garbage!" * 49 + b"\x00" * 4


# Accepted as photos whose metadata is absent: displayed size is the stored size.
METADATA: dict[str, Callable[[], bytes]] = {
    "JPEG, EXIF not TIFF": lambda: jpeg_exif(GARBAGE),
    "JPEG, EXIF IFD past the end": lambda: jpeg_exif(FAR_IFD),
    "JPEG, EXIF IFD loop": lambda: jpeg_exif(LOOPING_IFD),
    "JPEG, orientation 9": lambda: jpeg_exif(orientation_tiff(9)),
    "JPEG, orientation 0": lambda: jpeg_exif(orientation_tiff(0)),
    "JPEG, orientation 65535": lambda: jpeg_exif(orientation_tiff(65535)),
    "JPEG, orientation as text": lambda: jpeg_exif(TEXT_ORIENTATION),
    "JPEG, broken ICC profile": lambda: jpeg_with_icc(broken_icc()),
    "JPEG, ICC chunk out of sequence": lambda: jpeg_with_segment(0xE2, b"ICC_PROFILE\x00\x05\x02" + GARBAGE),
    "PNG, eXIf not TIFF": lambda: png_with_chunk(b"eXIf", GARBAGE),
    "PNG, eXIf only a TIFF header": lambda: png_with_chunk(b"eXIf", b"II*\x00"),
    "PNG, eXIf after the pixels, not TIFF": lambda: png_with_chunk(b"eXIf", GARBAGE, after_pixels=True),
    "PNG, orientation 9": lambda: png_with_chunk(b"eXIf", orientation_tiff(9)),
    "PNG, iCCP not zlib": lambda: png_with_chunk(b"iCCP", b"icc\x00\x00not zlib at all"),
    "PNG, iCCP not a profile": lambda: png_with_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(broken_icc())),
    "WebP, EXIF not TIFF": lambda: webp_with(exif=GARBAGE),
    "WebP, EXIF two bytes": lambda: webp_with(exif=b"II"),
    "WebP, orientation 9": lambda: webp_with(exif=orientation_tiff(9)),
    "WebP, orientation as text": lambda: webp_with(exif=TEXT_ORIENTATION),
    "WebP, broken ICC profile": lambda: webp_with(icc_profile=broken_icc()),
}

# Metadata Pillow will not open the file past: a deliberate 415 naming the file as corrupt.
CORRUPT_METADATA: dict[str, Callable[[], bytes]] = {
    "PNG, iCCP with an unknown compression": lambda: png_with_chunk(b"iCCP", b"icc\x00\x07" + zlib.compress(b"x")),
    "PNG, iCCP inflating past Pillow's cap": lambda: png_with_chunk(
        b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 20_000_000, 9)
    ),
    "JPEG, truncated ICC segment": lambda: jpeg_with_segment(0xE2, b"ICC_PROFILE\x00"),
}


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG header declaring `width` x `height`, with a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = (b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 64)), (b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + b"".join(png_chunk(kind, body) for kind, body in chunks)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to declare `width` x `height`."""
    jpeg = bytearray(encode(house(WIDTH, HEIGHT)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(jpeg)
