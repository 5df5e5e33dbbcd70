"""Seconds per photo of the local engine, per tier and style, on one core: the input to docs/scale.md.

`python -m bench.engine_rate` enhances a generated 3000×2000 listing photo (a 6 MP phone JPEG) with
the worker's own pipeline, `enhance_sync`, as a worker's process pool runs it: one photo per process
at a time. The process is pinned to one CPU so the figure is per core, whatever the machine. Each
(tier, style) is run once to warm up and then `BENCH_ENGINE_RUNS` times; the table gives the median.
The engine is all there is here: storage, PostgreSQL and RabbitMQ add milliseconds per job beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from bench.harness import ROOT
from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from services.worker.engines.styles import TIER_OUTPUT
from shared.domain import Style, Tier
from shared.imaging import DEFAULT_MAX_PIXELS
from tests.worker.photos import encode, house

RUNS = int(os.environ.get("BENCH_ENGINE_RUNS", "5"))


@dataclass(frozen=True)
class Rate:
    tier: str
    style: str
    median_s: float
    min_s: float
    max_s: float
    output_bytes: int

    @property
    def photos_per_core_hour(self) -> float:
        return 3600 / self.median_s


@contextlib.contextmanager
def pinned_to_one_core() -> Iterator[int | None]:
    """This process (numpy's and Pillow's threads too) on one CPU while the block runs, then on the CPUs it
    had again: whatever it starts afterwards inherits its affinity, and `make bench` starts the other
    benchmarks' servers and workers from this process. None where Linux's call is missing."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    core = min(allowed)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)


def measure(photo: bytes, tier: Tier, style: Style, runs: int) -> Rate:
    request = EnhanceRequest(image=photo, prompt="", tier=tier, style=style)
    result = enhance_sync(request, max_pixels=DEFAULT_MAX_PIXELS)  # warm-up: imports, caches, page faults
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        enhance_sync(request, max_pixels=DEFAULT_MAX_PIXELS)
        times.append(time.perf_counter() - started)
    return Rate(tier, style, statistics.median(times), min(times), max(times), len(result.image))


def table(rates: list[Rate]) -> str:
    lines = [
        "| tier | style | median s/photo | min..max s | photos/core-hour | output |",
        "|---|---|---|---|---|---|",
    ]
    for rate in rates:
        edge = TIER_OUTPUT[Tier(rate.tier)].long_edge
        lines.append(
            f"| {rate.tier} | {rate.style} | {rate.median_s:.2f} | {rate.min_s:.2f}..{rate.max_s:.2f} "
            f"| {rate.photos_per_core_hour:,.0f} | {edge} px, {rate.output_bytes / 1024:,.0f} KiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    photo = encode(house(args.width, args.height))
    with pinned_to_one_core() as core:
        rates = [measure(photo, tier, style, args.runs) for tier in Tier for style in Style]
    context = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, pinned to one: {core is not None}",
        "python": platform.python_version(),
        "photo": f"{args.width}×{args.height} JPEG, {len(photo) / 1024:,.0f} KiB",
        "runs": args.runs,
    }
    print("\n".join(f"{key}: {value}" for key, value in context.items()))
    print(table(rates))
    report = {"context": context, "rates": [asdict(rate) for rate in rates]}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "engine_rate.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
