"""One look at the whole system: what the health verdict and the alert rules are judged on."""

from __future__ import annotations

from dataclasses import dataclass

from services.monitor.snapshot import StatsSnapshot


@dataclass(frozen=True)
class Observation:
    at: float
    dependencies: dict[str, bool]  # "database" / "broker" -> answered the last check
    queue_depth: int  # ready messages in the work queues
    jobs_waiting: int  # work nobody has taken yet: the larger of the depth and PostgreSQL's queued jobs
    estimated_active: int
    stats: StatsSnapshot
