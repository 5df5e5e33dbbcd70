"""Latency summaries: DDSketch quantiles for rolling windows, cumulative histograms for Prometheus."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ddsketch import LogCollapsingLowestDenseDDSketch
from ddsketch.ddsketch import BaseDDSketch

# 1 % relative error; the bin cap bounds memory whatever arrives (collapsing only the fastest values).
RELATIVE_ACCURACY = 0.01
BIN_LIMIT = 1024
# Image jobs take from well under a second (local engine) to minutes (a busy queue, a slow model).
HISTOGRAM_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
QUANTILES = (0.5, 0.95, 0.99)


class Metric(StrEnum):
    QUEUE_WAIT = "queue_wait"  # queued -> first start
    PROCESSING = "processing"  # start -> finished, per attempt
    END_TO_END = "end_to_end"  # queued -> finished


Sketch = LogCollapsingLowestDenseDDSketch


def new_sketch() -> Sketch:
    return LogCollapsingLowestDenseDDSketch(relative_accuracy=RELATIVE_ACCURACY, bin_limit=BIN_LIMIT)


def merged(sketches: Iterable[Sketch]) -> Sketch:
    """A new sketch holding every value of `sketches`; they are left untouched."""
    total = new_sketch()
    for sketch in sketches:
        total.merge(sketch)
    return total


@dataclass(frozen=True)
class Percentiles:
    """Seconds; None when no value was seen."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, sketch: BaseDDSketch) -> Percentiles:
        if sketch.count == 0:
            return cls(0, None, None, None)
        p50, p95, p99 = (_rounded(sketch.get_quantile_value(q)) for q in QUANTILES)
        return cls(int(sketch.count), p50, p95, p99)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


class CumulativeHistogram:
    """Counts per bucket since the process started: what a Prometheus histogram exposes."""

    def __init__(self, bounds: tuple[float, ...] = HISTOGRAM_BUCKETS) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with infinity."""
        running, out = 0, []
        for bound, count in zip([*self.bounds, math.inf], self._counts, strict=True):
            running += count
            out.append((bound, running))
        return out
