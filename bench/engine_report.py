"""Highlights, shadows and banding of the local engine per style: the table and the grid in docs/engine.md.

`python -m bench.engine_report` enhances generated scenes (tests/worker/photos.py) with `enhance_sync` at
the free tier, prints a Markdown table and writes docs/engine-grid.png: the sources on the left, one column
per style. Window numbers are over `photos.WINDOW` (clipped) and its foliage pane `photos.PANE` (detail);
the shadow number is the mean luminance of `photos.DARK_CORNER`; banding is counted on `photos.shadow_ramp`.
Timing is the median seconds of `enhance_sync` on a 3000×2000 interior, the size `bench.engine_rate` uses.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from bench.harness import ROOT
from services.worker.engines import EnhanceRequest, tone
from services.worker.engines.local import enhance_sync
from services.worker.engines.pixels import Pixels, to_image
from shared.domain import Style, Tier
from tests.worker import photos

GRID_PATH = ROOT / "docs" / "engine-grid.png"
MAX_PIXELS = 8_000_000
THUMB = (320, 240)
LABEL_HEIGHT = 18


@dataclass(frozen=True)
class Row:
    """One style's numbers; the ``source_*`` fields are the unedited scene's."""

    style: str
    clipped: float
    source_clipped: float
    detail: float
    source_detail: float
    shadow: float
    source_shadow: float
    empty_levels: int
    largest_gap: int
    seconds: float


def enhanced(data: bytes, style: Style) -> Pixels:
    return photos.decode(enhance_sync(EnhanceRequest(data, "", Tier.FREE, style), max_pixels=MAX_PIXELS).image)


def measure(style: Style, scenes: dict[str, bytes], runs: int) -> Row:
    before, after = photos.decode(scenes["interior"]), enhanced(scenes["interior"], style)
    ramp = enhanced(scenes["ramp"], style)
    return Row(
        style=style.value,
        clipped=tone.clipped_fraction(photos.crop(after, photos.WINDOW)),
        source_clipped=tone.clipped_fraction(photos.crop(before, photos.WINDOW)),
        detail=tone.local_contrast(photos.crop(after, photos.PANE)),
        source_detail=tone.local_contrast(photos.crop(before, photos.PANE)),
        shadow=tone.mean_luminance(photos.crop(after, photos.DARK_CORNER)),
        source_shadow=tone.mean_luminance(photos.crop(before, photos.DARK_CORNER)),
        empty_levels=tone.empty_levels(ramp, below=0.5),
        largest_gap=tone.largest_gap(ramp, below=0.5),
        seconds=seconds_per_photo(scenes["large"], style, runs),
    )


def seconds_per_photo(data: bytes, style: Style, runs: int) -> float:
    request = EnhanceRequest(data, "", Tier.FREE, style)
    enhance_sync(request, max_pixels=MAX_PIXELS)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        enhance_sync(request, max_pixels=MAX_PIXELS)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(rows: list[Row]) -> str:
    lines = [
        "| style | window clipped % (source → out) | pane detail (source → out, kept) "
        "| dark corner (source → out) | ramp empty levels / widest gap | s per 6 MP photo |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.style} | {100 * row.source_clipped:.2f} → {100 * row.clipped:.2f} "
            f"| {row.source_detail:.4f} → {row.detail:.4f} ({row.detail / row.source_detail:.0%}) "
            f"| {row.source_shadow:.3f} → {row.shadow:.3f} | {row.empty_levels} / {row.largest_gap} "
            f"| {row.seconds:.3f} |"
        )
    return "\n".join(lines)


def grid(scenes: dict[str, bytes], path: Path) -> None:
    """Sources down the left, one column per style, each cell labelled."""
    names = ("interior", "house")
    columns = ["source", *(style.value for style in Style)]
    sheet = Image.new("RGB", (THUMB[0] * len(columns), (THUMB[1] + LABEL_HEIGHT) * len(names)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, name in enumerate(names):
        cells = [photos.decode(scenes[name]), *(enhanced(scenes[name], style) for style in Style)]
        for column, (label, pixels) in enumerate(zip(columns, cells, strict=True)):
            x, y = column * THUMB[0], row * (THUMB[1] + LABEL_HEIGHT)
            draw.text((x + 4, y + 3), f"{name}: {label}", fill="black")
            sheet.paste(to_image(pixels).resize(THUMB, Image.Resampling.LANCZOS), (x, y + LABEL_HEIGHT))
    sheet.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per style (median reported)")
    parser.add_argument("--grid", type=Path, default=GRID_PATH)
    args = parser.parse_args()
    scenes = {
        "interior": photos.encode(photos.interior()),
        "house": photos.encode(photos.house(1024, 768)),
        "ramp": photos.encode(photos.shadow_ramp(), "PNG"),
        "large": photos.encode(photos.interior(3000, 2000)),
    }
    grid(scenes, args.grid)
    print(table([measure(style, scenes, args.runs) for style in Style]))
    print(f"\ngrid: {args.grid}")


if __name__ == "__main__":
    main()
