"""Jobs by status and tier: the database's count, kept current between checks by the events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from services.monitor.facts import Fact, Kind
from shared.domain import JobStatus, Tier

# The move each event announces (DESIGN §2); the first status is None for a new job.
STEPS: dict[Kind, tuple[JobStatus | None, JobStatus]] = {
    Kind.QUEUED: (None, JobStatus.QUEUED),
    Kind.STARTED: (JobStatus.QUEUED, JobStatus.PROCESSING),
    Kind.SUCCEEDED: (JobStatus.PROCESSING, JobStatus.SUCCEEDED),
    Kind.FAILED: (JobStatus.PROCESSING, JobStatus.FAILED),
    Kind.RETRYING: (JobStatus.PROCESSING, JobStatus.QUEUED),
    Kind.CANCELED: (JobStatus.QUEUED, JobStatus.CANCELED),
}


class StatusCounts:
    """Exact after each `replace` (PostgreSQL is the truth); events move jobs along in between.

    An event can only approximate (a takeover restart looks like queued -> processing), so the
    next check's count replaces whatever drift the events caused.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[JobStatus, Tier]] = Counter()

    def replace(self, counts: Mapping[tuple[JobStatus, Tier], int]) -> None:
        self._counts = Counter(counts)

    def apply(self, fact: Fact) -> None:
        if fact.kind is Kind.QUEUED and fact.attempt > 0:
            return  # a retry re-queues a job its job.retrying event already moved
        source, target = STEPS[fact.kind]
        if source is not None and self._counts[source, fact.tier] > 0:
            self._counts[source, fact.tier] -= 1
        self._counts[target, fact.tier] += 1

    def count(self, status: JobStatus) -> int:
        return sum(n for (s, _), n in self._counts.items() if s is status)

    def by_status(self) -> dict[str, int]:
        return {status.value: self.count(status) for status in JobStatus}

    def by_tier(self) -> dict[str, dict[str, int]]:
        return {tier.value: {s.value: self._counts[s, tier] for s in JobStatus} for tier in Tier}

    def items(self) -> list[tuple[JobStatus, Tier, int]]:
        return [(status, tier, self._counts[status, tier]) for status in JobStatus for tier in Tier]
