"""Rolling time buckets: counts, error codes and latency sketches per slice of time, forgotten when old."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.monitor.aggregation.latency import Metric, Sketch, new_sketch
from services.monitor.aggregation.steps import Kind
from shared.domain import Tier


@dataclass
class Bucket:
    index: int
    counts: Counter[tuple[Kind, Tier]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    sketches: dict[tuple[Metric, Tier], Sketch] = field(default_factory=dict)

    def observe(self, metric: Metric, tier: Tier, seconds: float) -> None:
        sketch = self.sketches.get((metric, tier))
        if sketch is None:
            sketch = self.sketches[metric, tier] = new_sketch()
        sketch.add(max(seconds, 0.0))


B = TypeVar("B")


class RollingBuckets(Generic[B]):
    """`count` buckets of `width` seconds ending at "now"; anything older is dropped. A bucket is what
    `factory` makes of its index (the jobs' `Bucket`, the api's traffic)."""

    def __init__(self, width: float, count: int, factory: Callable[[int], B]) -> None:
        self.width = width
        self.count = count
        self._factory = factory
        self._buckets: dict[int, B] = {}

    def _index(self, moment: float) -> int:
        return int(moment // self.width)

    def bucket(self, moment: float, now: float) -> B | None:
        """The bucket `moment` falls in; None when that is already out of the span."""
        index, newest = self._index(min(moment, now)), self._index(now)
        if index <= newest - self.count:
            return None
        found = self._buckets.get(index)
        if found is None:
            found = self._buckets[index] = self._factory(index)
            self._forget_before(newest - self.count + 1)
        return found

    def _forget_before(self, oldest: int) -> None:
        for index in [i for i in self._buckets if i < oldest]:
            del self._buckets[index]

    def window(self, now: float, seconds: float) -> list[B]:
        """The buckets of the last `seconds` (bucket-aligned: the current bucket plus whole ones before)."""
        newest = self._index(now)
        span = min(max(int(seconds // self.width), 1), self.count)
        return [self._buckets[i] for i in range(newest - span + 1, newest + 1) if i in self._buckets]

    def slots(self, now: float) -> Iterator[tuple[float, B | None]]:
        """Every slot of the span, oldest first, with its start time: chart series have no gaps."""
        newest = self._index(now)
        for index in range(newest - self.count + 1, newest + 1):
            yield index * self.width, self._buckets.get(index)

    def __len__(self) -> int:
        return len(self._buckets)
