"""Job state changes: each is one statement, a conditional UPDATE with its job_events row.

The allowed moves are `shared.domain.TRANSITIONS`; a move the job is not eligible for (wrong
status, or no longer held by the worker named) changes nothing and returns None.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from shared.db import Queryable
from shared.domain import TRANSITIONS, JobStatus
from shared.jobs import Job


async def _transition(
    connection: Queryable,
    job_id: uuid.UUID,
    to: JobStatus,
    *,
    assignments: str,
    args: tuple[Any, ...] = (),
    from_statuses: frozenset[JobStatus] | None = None,
    owner: str | None = None,
    event_type: str,
    details: dict[str, Any] | None = None,
) -> Job | None:
    """Move the job to `to` only from an allowed status (and, given `owner`, only while that worker
    holds it); the history row is written by the same statement. None when the job was not eligible.
    """
    allowed = from_statuses if from_statuses is not None else TRANSITIONS[to]
    n = 3 + len(args)
    owned = f"AND previous.worker_id IS NOT DISTINCT FROM ${n + 3}" if owner is not None else ""
    record = await connection.fetchrow(
        f"""
        WITH previous AS (SELECT id, status, worker_id FROM jobs WHERE id = $1 FOR UPDATE),
        moved AS (
            UPDATE jobs SET status = $2, updated_at = now(), {assignments}
            FROM previous
            WHERE jobs.id = previous.id AND previous.status = ANY(${n}::text[]) {owned}
            RETURNING jobs.*, previous.status AS previous_status
        ),
        history AS (
            INSERT INTO job_events (job_id, type, from_status, to_status, details)
            SELECT id, ${n + 1}, previous_status, status, ${n + 2}::jsonb FROM moved
        )
        SELECT * FROM moved
        """,
        job_id,
        to.value,
        *args,
        [status.value for status in allowed],
        event_type,
        details or {},
        *((owner,) if owner is not None else ()),
    )
    if record is None:
        return None
    values = dict(record)
    values.pop("previous_status")
    return Job.from_values(values)


async def start(connection: Queryable, job_id: uuid.UUID, *, worker_id: str, takeover: bool = False) -> Job | None:
    """queued → processing; with `takeover`, also a job whose previous worker vanished mid-way."""
    allowed = TRANSITIONS[JobStatus.PROCESSING] if takeover else frozenset({JobStatus.QUEUED})
    return await _transition(
        connection,
        job_id,
        JobStatus.PROCESSING,
        assignments="attempts = attempts + 1, started_at = now(), worker_id = $3",
        args=(worker_id,),
        from_statuses=allowed,
        event_type="job.started",
        details={"worker_id": worker_id, "takeover": takeover},
    )


async def succeed(
    connection: Queryable,
    job_id: uuid.UUID,
    *,
    output_key: str,
    content_type: str,
    cost: Decimal,
    engine: str,
    worker_id: str | None = None,
) -> Job | None:
    """processing → succeeded; with `worker_id`, only while that worker still holds the job."""
    return await _transition(
        connection,
        job_id,
        JobStatus.SUCCEEDED,
        assignments="output_key = $3, output_content_type = $4, cost = cost + $5, engine = $6, "
        "completed_at = now(), error_code = NULL, error_message = NULL",
        args=(output_key, content_type, cost, engine),
        owner=worker_id,
        event_type="job.succeeded",
        details={"output_key": output_key, "engine": engine, "cost": str(cost)},
    )


async def fail(
    connection: Queryable, job_id: uuid.UUID, *, code: str, message: str, worker_id: str | None = None
) -> Job | None:
    return await _transition(
        connection,
        job_id,
        JobStatus.FAILED,
        assignments="error_code = $3, error_message = $4, completed_at = now()",
        args=(code, message),
        owner=worker_id,
        event_type="job.failed",
        details={"error_code": code, "error_message": message},
    )


async def schedule_retry(
    connection: Queryable,
    job_id: uuid.UUID,
    *,
    code: str,
    message: str,
    delay_ms: int,
    worker_id: str | None = None,
    event_type: str = "job.retrying",
) -> Job | None:
    return await _transition(
        connection,
        job_id,
        JobStatus.QUEUED,
        assignments="error_code = $3, error_message = $4, worker_id = NULL",
        args=(code, message),
        owner=worker_id,
        event_type=event_type,
        details={"error_code": code, "error_message": message, "delay_ms": delay_ms},
    )


async def cancel(connection: Queryable, job_id: uuid.UUID) -> Job | None:
    return await _transition(
        connection, job_id, JobStatus.CANCELED, assignments="completed_at = now()", event_type="job.canceled"
    )
