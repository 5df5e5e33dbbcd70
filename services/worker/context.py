"""Everything a job handler needs, built once by the runner and passed down."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from services.worker.engines import Engine
from services.worker.faults import NO_FAULTS, Faults
from services.worker.metrics import WorkerMetrics
from services.worker.scheduler import TierScheduler
from services.worker.settings import WorkerSettings
from shared.broker import Broker
from shared.groupcommit import GroupCommit
from shared.storage import Store


@dataclass
class WorkerStats:
    """Counters the heartbeat reports."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    processed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class WorkerContext:
    settings: WorkerSettings
    pool: asyncpg.Pool
    broker: Broker
    # Where its state changes go: the ones under way together share a transaction (shared/groupcommit.py).
    commits: GroupCommit
    engine: Engine
    # The process pool for CPU-bound image work (the local engine, the structure guard).
    executor: Executor
    uploads: Store
    outputs: Store
    scheduler: TierScheduler
    stats: WorkerStats
    # What /metrics on METRICS_PORT shows: engine durations and costs, job outcomes.
    metrics: WorkerMetrics
    # Test-only fault injection, kept out of the settings: inert unless LUSTER_FAULTS is set.
    faults: Faults = NO_FAULTS

    @property
    def worker_id(self) -> str:
        return self.settings.worker_id
