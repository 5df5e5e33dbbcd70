"""The local engine against the plain full-size Pillow pipeline, side by side, at 6 MP and 24 MP.

`python -m bench.engine_speed` (part of `make bench`) enhances a generated listing photo at each size with
the worker's own `enhance_sync`, per tier and style, and with the plain pipeline a photo editor would
write first: decode every pixel, autocontrast, colour, brightness, unsharp mask, resize to the tier's long
edge, encode. One process pinned to one core; rounds alternate between the two so that the machine's
noise falls on both alike; each figure is the median of the rounds. It reports images/s per core, CPU
seconds per image, and the ratio, and fails when the engine is under `TARGET` times the plain pipeline
at 24 MP for any style.

The engine decodes a JPEG no larger than its output needs (libjpeg scales by 1/2, 1/4 or 1/8 as it
decodes) and works at output size. Whether that costs quality is measured too: the engine's output from
the reduced decode against its output from a full decode, as PSNR of luminance (40 dB and more is no
difference anyone can see).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from bench.engine_rate import pin_to_one_core
from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from services.worker.engines.styles import TIER_OUTPUT
from shared.domain import Style, Tier
from tests.worker.photos import encode, house

ROUNDS = int(os.environ.get("BENCH_ENGINE_ROUNDS", "3"))
TARGET = 2.0  # the engine's images/s over the plain pipeline's, at 24 MP, for every style
MIN_PSNR_DB = 40.0
SIZES = {"6 MP": (3000, 2000), "24 MP": (6000, 4000)}
MAX_PIXELS = 50_000_000


def plain_pipeline(data: bytes, tier: Tier) -> bytes:
    """What the engine is measured against: every step at full size, then the resize."""
    output = TIER_OUTPUT[tier]
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = ImageOps.autocontrast(image, cutoff=0.5)
    image = ImageEnhance.Color(image).enhance(1.1)
    image = ImageEnhance.Brightness(image).enhance(1.05)
    image = image.filter(ImageFilter.UnsharpMask(radius=2, percent=80, threshold=2))
    image = image.resize(output.size_for(*image.size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=output.jpeg_quality, optimize=True)
    return buffer.getvalue()


def engine(data: bytes, tier: Tier, style: Style, *, reduced_decode: bool = True) -> bytes:
    request = EnhanceRequest(data, "", tier, style)
    return enhance_sync(request, max_pixels=MAX_PIXELS, reduced_decode=reduced_decode).image


@dataclass(frozen=True)
class Timing:
    seconds: float
    cpu_seconds: float


def timed(work: Callable[[], bytes]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


@dataclass(frozen=True)
class Row:
    size: str
    tier: str
    style: str
    engine: Timing
    plain: Timing

    @property
    def ratio(self) -> float:
        return self.plain.seconds / self.engine.seconds


def median_timing(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.seconds for t in timings), statistics.median(t.cpu_seconds for t in timings))


def compare(size: str, photo: bytes, tier: Tier, style: Style, rounds: int) -> Row:
    ours, theirs = [], []
    engine(photo, tier, style), plain_pipeline(photo, tier)  # warm-up: imports, caches, page faults
    for _ in range(rounds):  # alternating, so a noisy moment falls on both
        ours.append(timed(lambda: engine(photo, tier, style)))
        theirs.append(timed(lambda: plain_pipeline(photo, tier)))
    return Row(size, tier.value, style.value, median_timing(ours), median_timing(theirs))


def full_decode_psnr(photo: bytes, tier: Tier, style: Style) -> float:
    """PSNR (dB, luminance) of the engine's output against its output from a full-size decode."""
    reduced, full = engine(photo, tier, style), engine(photo, tier, style, reduced_decode=False)
    a, b = (np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64) for data in (reduced, full))
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def table(rows: list[Row]) -> str:
    lines = [
        "| photo | tier | style | engine images/s | plain images/s | ratio | engine CPU s | plain CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.size} | {row.tier} | {row.style} | {1 / row.engine.seconds:.2f} | {1 / row.plain.seconds:.2f} "
            f"| {row.ratio:.2f}× | {row.engine.cpu_seconds:.3f} | {row.plain.cpu_seconds:.3f} |"
        )
    return "\n".join(lines)


def over_budget(rows: list[Row]) -> str | None:
    slow = [f"{row.tier}/{row.style} {row.ratio:.2f}×" for row in rows if row.size == "24 MP" and row.ratio < TARGET]
    return f"engine under {TARGET}× the plain pipeline at 24 MP: {', '.join(slow)}" if slow else None


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    core = pin_to_one_core()
    rows, quality = [], []
    for size, (width, height) in SIZES.items():
        photo = encode(house(width, height))
        for tier in Tier:
            for style in Style:
                rows.append(compare(size, photo, tier, style, args.rounds))
            quality.append(f"{size} {tier.value}: {full_decode_psnr(photo, tier, Style.DEFAULT):.1f} dB")
    print(
        f"engine vs plain pipeline, {datetime.now(UTC).date()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"pinned to one: {core is not None}, Python {platform.python_version()}, medians of {args.rounds} rounds"
    )
    print(table(rows))
    print("reduced decode vs full decode, engine output PSNR (luminance): " + "; ".join(quality))
    low = [q for q in quality if float(q.rsplit(": ", 1)[1].split()[0]) < MIN_PSNR_DB]
    if low:
        sys.exit(f"the reduced decode changed the output: {low}")
    return rows


if __name__ == "__main__":
    problem = over_budget(main())
    if problem:
        sys.exit(problem)
