"""A JPEG's structure read without decoding its pixels: whole files pass, truncated ones do not.

What decoding a JPEG refuses is, in practice, a file that ends early or headers libjpeg cannot use: it
only warns about damaged compressed data (it fills the damaged blocks in and carries on), so a decode at
any scale accepts a photo with bytes changed or cut out of its middle. Reading the markers finds the end:
every segment within the file, a frame and a scan before the end-of-image marker, and the compressed data
of each scan running up to a marker rather than off the end of the file; `first_rows` then gives libjpeg
the headers to read. For a 6 MP photo of 2 MB the two take 2 to 3 ms, where decoding it at 1/8 scale
(libjpeg still reads every block) takes about 20.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SOI = b"\xff\xd8"
_EOI = 0xD9
_SOS = 0xDA
_DQT = 0xDB
# The frames libjpeg decodes into 8-bit pixels: baseline, extended and progressive, Huffman or arithmetic
# coded. Lossless and hierarchical frames are no listing photo.
_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC9, 0xCA})
_OTHER_FRAMES = frozenset({0xC3, 0xC5, 0xC6, 0xC7, 0xCB, 0xCD, 0xCE, 0xCF})
_ANY_FRAME = _FRAMES | _OTHER_FRAMES
# Markers without a length: restart markers and TEM.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_ROWS = 16  # the tallest row of blocks: 8 lines, twice over where chroma is subsampled vertically
# A marker is 0xFF and a byte neither 0x00 (a stuffed 0xFF in compressed data) nor 0xFF (fill); libjpeg
# skips anything else between segments, and so does this.
_MARKER = re.compile(rb"\xff[^\x00\xff]")
# What may follow a scan's data: tables, restart interval, metadata, the next scan, the end. Any other
# marker inside compressed data is damage to that data (a changed byte after a stuffed 0xFF), which a
# decoder warns about and decodes past, and so is read past here.
_END_OF_SCAN = re.compile(rb"\xff[\xc4\xcc\xd9\xda\xdb\xdc\xdd\xe0-\xef\xfe]")


class BrokenJpeg(ValueError):
    """The file is not a whole JPEG; the message says where it fails."""


@dataclass(frozen=True)
class Layout:
    """Where a whole JPEG's frame header (its body, past the length) and first scan's compressed data begin."""

    frame: int
    first_scan: int


def check_whole(data: bytes) -> Layout:
    """Raise BrokenJpeg unless `data` is a JPEG with a frame, its quantisation tables, a scan and its end."""
    if not data.startswith(_SOI):
        raise BrokenJpeg("no start-of-image marker")
    walk = _Walk(data)
    at = len(_SOI)
    while found := _MARKER.search(data, at):
        marker, at = found.group()[1], found.end()
        if marker == _EOI:
            return walk.layout()
        if marker not in _STANDALONE:
            at = walk.segment(marker, at)
    raise BrokenJpeg("no end-of-image marker (truncated)")


class _Walk:
    """What the segments read so far declared: the quantisation tables defined and used, the scans."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.defined: set[int] = set()
        self.used: set[int] = set()
        self.frame = 0
        self.scans: list[int] = []  # where each scan's compressed data begins

    def segment(self, marker: int, at: int) -> int:
        """Read the segment whose length starts at `at`; return where the next marker may start."""
        data = self.data
        length = int.from_bytes(data[at : at + 2], "big")
        if at + 2 > len(data) or at + length > len(data):
            raise BrokenJpeg(f"segment 0x{marker:02X} at byte {at - 2} runs past the end of the file")
        if length < 2:
            raise BrokenJpeg(f"segment 0x{marker:02X} at byte {at - 2} has an impossible length")
        body, end = data[at + 2 : at + length], at + length
        if marker == _DQT:
            self.defined |= _quantisation_tables(body)
        elif marker in _ANY_FRAME and self.scans:
            raise BrokenJpeg(f"a frame header (0x{marker:02X}) after the image data began: damaged data")
        elif marker in _FRAMES:
            self.used |= _frame_tables(body)
            self.frame = at + 2
        elif marker in _OTHER_FRAMES:
            raise BrokenJpeg(f"a lossless or hierarchical JPEG (frame 0x{marker:02X}) is not supported")
        elif marker == _SOS:
            return self.scan(end)
        return end

    def scan(self, at: int) -> int:
        """Check a scan may begin, and find the end of its compressed data, which starts at `at`."""
        if not self.used:
            raise BrokenJpeg("image data before the frame header")
        if missing := self.used - self.defined:
            raise BrokenJpeg(f"quantisation table {min(missing)} is used but never defined")
        self.scans.append(at)
        end = _END_OF_SCAN.search(self.data, at)
        if end is None:
            raise BrokenJpeg("image data runs to the end of the file (truncated)")
        return end.start()

    def layout(self) -> Layout:
        if not self.scans:
            raise BrokenJpeg("the image ends before any image data")
        return Layout(self.frame, self.scans[0])


def first_rows(data: bytes, layout: Layout, *, compressed_bytes: int = 16 * 1024) -> bytes:
    """A JPEG of the photo's first rows: its headers, the start of its first scan and an end marker, the
    frame's height cut to one row of blocks (16 lines at most). Decoding it runs libjpeg over every header
    (Huffman tables, components, sampling factors) and the first compressed data in well under a millisecond:
    a decoder stops when its rows are done, where the photo's whole height would have it fill in every block
    the cut left out."""
    opening = bytearray(data[: layout.first_scan + compressed_bytes] + bytes([0xFF, _EOI]))
    height = slice(layout.frame + 1, layout.frame + 3)  # after the sample precision
    if int.from_bytes(opening[height], "big") > _ROWS:
        opening[height] = _ROWS.to_bytes(2, "big")
    return bytes(opening)


def _quantisation_tables(segment: bytes) -> set[int]:
    """The ids a DQT segment defines (one segment may hold several tables, 8- or 16-bit)."""
    ids: set[int] = set()
    at = 0
    while at < len(segment):
        precision, table = segment[at] >> 4, segment[at] & 0x0F
        ids.add(table)
        at += 1 + 64 * (2 if precision else 1)
    if at != len(segment):
        raise BrokenJpeg("a quantisation table segment of the wrong length")
    return ids


def _frame_tables(segment: bytes) -> set[int]:
    """The quantisation tables a frame header's components use."""
    if len(segment) < 6 or len(segment) != 6 + 3 * segment[5] or segment[5] == 0:
        raise BrokenJpeg("a frame header of the wrong length")
    return {segment[6 + 3 * n + 2] for n in range(segment[5])}
