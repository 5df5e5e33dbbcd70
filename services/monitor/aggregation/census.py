"""Jobs by status and tier as PostgreSQL counts them, kept current between checks by the events; and how many
jobs a month brings."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from services.monitor.aggregation.steps import Kind, Step
from shared.domain import JobStatus, Tier

QUERY_TIMEOUT_S = 5.0
VOLUME_DAYS = 30

# The move each event announces (DESIGN §2); the first status is None for a new job.
MOVES: dict[Kind, tuple[JobStatus | None, JobStatus]] = {
    Kind.QUEUED: (None, JobStatus.QUEUED),
    Kind.STARTED: (JobStatus.QUEUED, JobStatus.PROCESSING),
    Kind.SUCCEEDED: (JobStatus.PROCESSING, JobStatus.SUCCEEDED),
    Kind.FAILED: (JobStatus.PROCESSING, JobStatus.FAILED),
    Kind.RETRYING: (JobStatus.PROCESSING, JobStatus.QUEUED),
    Kind.CANCELED: (JobStatus.QUEUED, JobStatus.CANCELED),
}


async def job_counts(pool: asyncpg.Pool) -> dict[tuple[JobStatus, Tier], int]:
    # One scan of the table, or of idx_jobs_status_created_id, by the planner's choice; run once per check.
    rows = await pool.fetch(
        "SELECT status, tier, count(*) AS n FROM jobs GROUP BY status, tier", timeout=QUERY_TIMEOUT_S
    )
    return {(JobStatus(row["status"]), Tier(row["tier"])): int(row["n"]) for row in rows}


class StatusCounts:
    """Exact after each `replace` (PostgreSQL is the truth); events move jobs along in between.

    An event can only approximate (a takeover restart looks like queued -> processing), so the
    next check's count replaces whatever drift the events caused.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[JobStatus, Tier]] = Counter()

    def replace(self, counts: Mapping[tuple[JobStatus, Tier], int]) -> None:
        self._counts = Counter(counts)

    def apply(self, step: Step) -> None:
        if step.kind is Kind.QUEUED and step.attempt > 0:
            return  # a retry re-queues a job its job.retrying event already moved
        source, target = MOVES[step.kind]
        if source is not None and self._counts[source, step.tier] > 0:
            self._counts[source, step.tier] -= 1
        self._counts[target, step.tier] += 1

    def count(self, status: JobStatus) -> int:
        return sum(n for (s, _), n in self._counts.items() if s is status)

    def by_status(self) -> dict[str, int]:
        return {status.value: self.count(status) for status in JobStatus}

    def by_tier(self) -> dict[str, dict[str, int]]:
        return {tier.value: {s.value: self._counts[s, tier] for s in JobStatus} for tier in Tier}

    def items(self) -> list[tuple[JobStatus, Tier, int]]:
        return [(status, tier, self._counts[status, tier]) for status in JobStatus for tier in Tier]


@dataclass(frozen=True)
class Volume:
    jobs: int
    observed_s: float  # the span those jobs came in: 30 days, or less on a young system


async def job_volume(pool: asyncpg.Pool, *, days: int = VOLUME_DAYS) -> Volume:
    row = await pool.fetchrow(
        """
        SELECT count(*) AS jobs, extract(epoch FROM now() - min(created_at)) AS observed_s
        FROM jobs WHERE created_at > now() - make_interval(days => $1)
        """,
        days,
        timeout=QUERY_TIMEOUT_S,
    )
    assert row is not None
    return Volume(int(row["jobs"]), float(row["observed_s"] or 0.0))
