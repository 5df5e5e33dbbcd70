"""A JPEG's check without a whole decode refuses exactly what a whole decode refuses.

The upload check (shared/imaging.py probe: the file's structure, then libjpeg reading its headers and the
start of its data) stands in for decoding every block. Each damaged file below is judged both ways, and
the two verdicts must agree: truncations anywhere, damaged headers, damaged compressed data.
"""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import pytest
from PIL import Image

from shared.errors import UnsupportedImage
from shared.imaging import probe
from shared.jpeg_structure import BrokenJpeg, Layout, check_whole, first_rows
from tests.worker.photos import encode, house

MAX_PIXELS = 10_000_000


def _jpeg(**options: object) -> bytes:
    pixels = np.round(np.clip(house(320, 240), 0.0, 1.0) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


BASELINE = _jpeg()
PROGRESSIVE = _jpeg(progressive=True)
RESTARTS = _jpeg(restart_marker_blocks=4)
KINDS = {"baseline": BASELINE, "progressive": PROGRESSIVE, "restart markers": RESTARTS}


def _segment(data: bytes, marker: int) -> tuple[int, int]:
    """Where the first segment `marker` starts, and its length field."""
    at = data.index(bytes([0xFF, marker]))
    return at, struct.unpack(">H", data[at + 2 : at + 4])[0]


def _changed(data: bytes, marker: int, offset: int, value: bytes) -> bytes:
    """`data` with bytes of the first segment `marker` replaced, `offset` counted from its marker."""
    at = _segment(data, marker)[0] + offset
    return data[:at] + value + data[at + len(value) :]


def _without(data: bytes, marker: int) -> bytes:
    at, length = _segment(data, marker)
    return data[:at] + data[at + 2 + length :]


def _scan_data(data: bytes) -> tuple[int, int]:
    """The first scan's compressed data: where it begins, where it ends."""
    at, length = _segment(data, 0xDA)
    begins = at + 2 + length
    end = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]").search(data, begins)
    assert end is not None
    return begins, end.start()


def _bytes_changed(data: bytes, every: int) -> bytes:
    """Compressed bytes changed (XOR 0x55) every `every` bytes, never making or unmaking a marker."""
    begins, ends = _scan_data(data)
    damaged = bytearray(data)
    for at in range(begins + 1, ends - 1, every):
        new = damaged[at] ^ 0x55
        if 0xFF not in (damaged[at - 1], damaged[at], new):
            damaged[at] = new
    return bytes(damaged)


def _zeroed(data: bytes) -> bytes:
    begins, ends = _scan_data(data)
    middle = (begins + ends) // 2
    return data[:middle] + bytes(400) + data[middle + 400 :]


def _cut_from_middle(data: bytes) -> bytes:
    begins, ends = _scan_data(data)
    middle = (begins + ends) // 2
    return data[:middle] + data[middle + (ends - begins) // 4 :]


def _with_thumbnail(data: bytes) -> bytes:
    """An APP1 segment holding a whole small JPEG, as EXIF thumbnails are stored: its end marker is inside."""
    payload = b"Exif\x00\x00" + encode(house(32, 24))
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def _truncations(name: str, data: bytes) -> dict[str, bytes]:
    """Cut at 12 places through headers and data, and just before the end-of-image marker."""
    cuts = {f"{name}, cut at {n}/12": data[: len(data) * n // 12] for n in range(1, 12)}
    return {**cuts, f"{name}, the end marker cut off": data[:-2], f"{name}, the last byte cut off": data[:-1]}


def _second_scan(data: bytes) -> int:
    return [found.start() for found in re.finditer(b"\xff\xda", data)][1]


THUMBNAILED = _with_thumbnail(BASELINE)
DAMAGED: dict[str, bytes] = {
    **KINDS,
    **{f"{name}, bytes after the end": data + b"trailer" * 10 for name, data in KINDS.items()},
    **{name: cut for kind, data in KINDS.items() for name, cut in _truncations(kind, data).items()},
    "with an EXIF thumbnail": THUMBNAILED,
    **_truncations("with an EXIF thumbnail", THUMBNAILED),
    "progressive, cut at its second scan": PROGRESSIVE[: _second_scan(PROGRESSIVE)],
    "progressive, cut at its second scan, an end marker added": PROGRESSIVE[: _second_scan(PROGRESSIVE)] + b"\xff\xd9",
    "half the data and an end marker": BASELINE[: len(BASELINE) // 2] + b"\xff\xd9",
    "compressed bytes changed, every 97th": _bytes_changed(BASELINE, 97),
    "compressed bytes changed, every 7th": _bytes_changed(BASELINE, 7),
    "restart markers, compressed bytes changed": _bytes_changed(RESTARTS, 31),
    "400 compressed bytes zeroed": _zeroed(BASELINE),
    "a quarter of the compressed data cut out": _cut_from_middle(BASELINE),
    "no quantisation table": _without(BASELINE, 0xDB),
    "no Huffman table (libjpeg's standard ones serve)": _without(BASELINE, 0xC4),
    "Huffman table counts garbage": _changed(BASELINE, 0xC4, 5, b"\xff" * 16),
    "scan naming tables that do not exist": _changed(BASELINE, 0xDA, 6, b"\x77"),
    "scan naming a component that does not exist": _changed(BASELINE, 0xDA, 5, b"\x09"),
    "frame header with a wrong component count": _changed(BASELINE, 0xC0, 9, b"\x05"),
    "frame header with impossible sampling factors": _changed(BASELINE, 0xC0, 11, b"\x44"),
    "no frame header": _without(BASELINE, 0xC0),
    "no scan": BASELINE[: _segment(BASELINE, 0xDA)[0]] + b"\xff\xd9",
}


def _decodes_whole(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception:  # any refusal of Pillow's is the verdict being compared
        return False
    return True


def _refusal(data: bytes) -> str | None:
    """The code the check refuses `data` with, or None when it passes."""
    try:
        probe(data, max_pixels=MAX_PIXELS)
    except UnsupportedImage as refused:
        return refused.code
    return None


@pytest.mark.parametrize("data", DAMAGED.values(), ids=DAMAGED.keys())
def test_the_check_refuses_exactly_what_a_whole_decode_refuses(data: bytes) -> None:
    assert _refusal(data) == (None if _decodes_whole(data) else "corrupt_image")


def test_the_damage_is_not_all_of_one_verdict() -> None:
    verdicts = [_decodes_whole(data) for data in DAMAGED.values()]

    assert verdicts.count(True) >= 10 and verdicts.count(False) >= 30


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BASELINE[:-2], "truncated"),
        (b"\xff\xd8\xff\xd9", "before any image data"),
        (b"\xff\xd8\xff\xe0\x00", "past the end"),
        (_changed(BASELINE, 0xC0, 1, b"\xc3"), "lossless or hierarchical"),
    ],
)
def test_a_broken_jpeg_says_where_it_fails(data: bytes, reason: str) -> None:
    with pytest.raises(BrokenJpeg, match=reason):
        check_whole(data)


def test_the_frame_and_first_scan_are_found_past_headers_and_thumbnails() -> None:
    thumbnail_segment = len(THUMBNAILED) - len(BASELINE)

    assert check_whole(THUMBNAILED) == Layout(
        _segment(BASELINE, 0xC0)[0] + 4 + thumbnail_segment, _scan_data(BASELINE)[0] + thumbnail_segment
    )


@pytest.mark.parametrize("data", KINDS.values(), ids=KINDS.keys())
def test_the_first_rows_are_a_jpeg_of_the_photos_first_rows(data: bytes) -> None:
    rows = first_rows(data, check_whole(data))

    with Image.open(io.BytesIO(data)) as photo, Image.open(io.BytesIO(rows)) as start:
        start.load()
        assert start.size == (photo.width, 16)
        # The last lines differ a little: chroma upsampling looks at the next row of blocks, absent here.
        assert photo.crop((0, 0, photo.width, 8)).tobytes() == start.crop((0, 0, photo.width, 8)).tobytes()
