"""A job's timings, read from its history: the queue wait, time spent processing, and each attempt.

An attempt runs from a `job.started` row to the row that ends it:

    job.started ──┬── job.succeeded   → succeeded
                  ├── job.failed      → failed
                  ├── job.retrying    → retrying (the job waits in the queue again)
                  └── job.started     → lost (a takeover: the previous worker vanished mid-way)

An attempt with no end yet is the one running now; its outcome is null.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, TypeAlias

import asyncpg

from shared.domain import TERMINAL_STATUSES
from shared.events import EventType
from shared.jobs import Job

Outcome = Literal["succeeded", "failed", "retrying", "lost"]
# A job_events row as shared.jobs.history reads it, or the same as a plain mapping.
Event: TypeAlias = "asyncpg.Record | Mapping[str, Any]"

_ENDINGS: dict[str, Outcome] = {
    EventType.JOB_SUCCEEDED.value: "succeeded",
    EventType.JOB_FAILED.value: "failed",
    EventType.JOB_RETRYING.value: "retrying",
}


@dataclass(frozen=True)
class Attempt:
    number: int
    started_at: datetime
    worker_id: str | None
    ended_at: datetime | None = None
    outcome: Outcome | None = None
    error_code: str | None = None

    def ended(self, at: datetime, outcome: Outcome, error_code: str | None = None) -> Attempt:
        return replace(self, ended_at=at, outcome=outcome, error_code=error_code)


@dataclass(frozen=True)
class Timings:
    queue_wait_s: float | None
    processing_s: float | None
    total_s: float | None
    attempts: list[Attempt]


def attempts_of(history: Iterable[Event]) -> list[Attempt]:
    """The attempts a job's history rows (oldest first: type, details, created_at) record."""
    attempts: list[Attempt] = []
    running: Attempt | None = None
    for row in history:
        kind, details, at = row["type"], row["details"] or {}, row["created_at"]
        if kind == EventType.JOB_STARTED.value:
            if running is not None:  # only a takeover starts a job that is still processing
                attempts.append(running.ended(at, "lost"))
            running = Attempt(len(attempts) + 1, at, details.get("worker_id"))
        elif kind in _ENDINGS and running is not None:  # a queued job can fail without an attempt
            attempts.append(running.ended(at, _ENDINGS[kind], details.get("error_code")))
            running = None
    return [*attempts, running] if running is not None else attempts


def timings(job: Job, history: Iterable[Event]) -> Timings:
    """`queue_wait_s` runs from creation to the FIRST start: the wait before a retry's attempt is in
    neither it nor `processing_s`, only in `total_s`. `processing_s` sums the attempts that have ended
    (null before one has); `total_s` runs from creation to completion (null until the job is terminal)."""
    attempts = attempts_of(history)
    ended = [attempt for attempt in attempts if attempt.ended_at is not None]
    processing = sum(_seconds(attempt.started_at, attempt.ended_at) for attempt in ended if attempt.ended_at)
    terminal = job.status in TERMINAL_STATUSES and job.completed_at is not None
    return Timings(
        queue_wait_s=_seconds(job.created_at, attempts[0].started_at) if attempts else None,
        processing_s=processing if ended else None,
        total_s=_seconds(job.created_at, job.completed_at) if terminal and job.completed_at else None,
        attempts=attempts,
    )


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()
