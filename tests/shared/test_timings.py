"""The attempts a job's history records, read without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.timings import Attempt, attempts_of

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def event(kind: str, at_s: int, **details: Any) -> dict[str, Any]:
    return {"type": kind, "details": details, "created_at": T0 + timedelta(seconds=at_s)}


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_job_that_never_started_has_no_attempt_even_when_it_failed() -> None:
    assert attempts_of([event("job.queued", 0), event("job.failed", 5, error_code="expired")]) == []


def test_a_retry_ends_an_attempt_and_the_next_start_opens_another() -> None:
    history = [
        event("job.queued", 0),
        event("job.started", 2, worker_id="w-1"),
        event("job.retrying", 5, error_code="engine_timeout"),
        event("job.started", 9, worker_id="w-2"),
    ]

    assert attempts_of(history) == [
        Attempt(1, at(2), "w-1", ended_at=at(5), outcome="retrying", error_code="engine_timeout"),
        Attempt(2, at(9), "w-2"),  # still running
    ]


def test_a_takeover_ends_the_vanished_workers_attempt_as_lost() -> None:
    history = [
        event("job.started", 1, worker_id="w-1", takeover=False),
        event("job.started", 30, worker_id="w-2", takeover=True),
        event("job.succeeded", 35),
    ]

    assert [(a.worker_id, a.ended_at, a.outcome) for a in attempts_of(history)] == [
        ("w-1", at(30), "lost"),
        ("w-2", at(35), "succeeded"),
    ]
