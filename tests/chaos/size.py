"""How big each scenario is: `make test` runs the short version, `make chaos` the full one (CHAOS_JOBS=200)."""

from __future__ import annotations

import os
from dataclasses import dataclass

SHORT_JOBS, FULL_JOBS = 25, 200


@dataclass(frozen=True)
class Size:
    jobs: int  # per scenario
    backlog: int  # for the backlog scenario
    retry_scale: float  # RETRY_DELAY_SCALE of the workers

    @property
    def label(self) -> str:
        return "full" if self.jobs >= FULL_JOBS else "short"

    def scaled(self, short: float, full: float) -> float:
        """A duration for this size, interpolated between its short and full values."""
        share = min(max((self.jobs - SHORT_JOBS) / (FULL_JOBS - SHORT_JOBS), 0.0), 1.0)
        return short + (full - short) * share

    def timeout(self, jobs: int | None = None) -> float:
        """A per-test timeout generous enough for the slowest drain of this size."""
        return 300 + 4 * (jobs or self.jobs)


def from_env() -> Size:
    jobs = int(os.environ.get("CHAOS_JOBS", str(SHORT_JOBS)))
    backlog = int(os.environ.get("CHAOS_BACKLOG_JOBS", str(jobs * 4)))
    # The full run keeps the real backoff ladder (1 s, 5 s, 30 s, 120 s); the short one compresses it.
    scale = float(os.environ.get("CHAOS_RETRY_DELAY_SCALE", "1.0" if jobs >= FULL_JOBS else "0.1"))
    return Size(jobs, backlog, scale)


SIZE = from_env()
