"""Whether an instance's memory keeps growing: its resident memory at its last heartbeats, every one of them
at least the one before, the newest well above the oldest. A leak looks like that; a cache filling up and
holding steady, or a busy minute and then a quiet one, does not.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

SAMPLES = 12  # a minute of a worker's heartbeats, two of an api's
GROWTH = 0.10  # the newest at least this much above the oldest


@dataclass
class MemoryTrend:
    samples: deque[int] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def add(self, rss_bytes: int) -> None:
        self.samples.append(rss_bytes)

    @property
    def growing(self) -> bool:
        if len(self.samples) < SAMPLES:
            return False
        values = list(self.samples)
        rising = all(later >= earlier for earlier, later in itertools.pairwise(values))
        return rising and values[-1] >= values[0] * (1 + GROWTH)
