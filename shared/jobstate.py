"""Job state changes: each is one statement, a conditional UPDATE with its job_events row.

The allowed moves are `shared.domain.TRANSITIONS`; a move the job is not eligible for (wrong
status, or no longer held by the worker named) changes nothing and returns None.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from shared.db import Queryable
from shared.domain import TRANSITIONS, JobStatus
from shared.events import EventType
from shared.jobs import Job
from shared.sql import NOW, Added, Parameters, Sql


async def _transition(
    connection: Queryable,
    job_id: uuid.UUID,
    to: JobStatus,
    event: EventType,
    *,
    changes: Mapping[str, Any],
    from_statuses: frozenset[JobStatus] | None = None,
    owner: str | None = None,
    details: dict[str, Any] | None = None,
) -> Job | None:
    """Move the job to `to` only from an allowed status (and, given `owner`, only while that worker
    holds it), setting `changes` too; the history row is written by the same statement. None when the
    job was not eligible.
    """
    allowed = from_statuses if from_statuses is not None else TRANSITIONS[to]
    params = Parameters()
    job, target = params.add(job_id), params.add(to.value)
    assignments = params.assignments({"status": Sql(target), "updated_at": NOW, **changes})
    eligible = params.add([status.value for status in allowed])
    held = f"AND previous.worker_id IS NOT DISTINCT FROM {params.add(owner)}" if owner is not None else ""
    record = await connection.fetchrow(
        f"""
        WITH previous AS (SELECT id, status, worker_id FROM jobs WHERE id = {job} FOR UPDATE),
        moved AS (
            UPDATE jobs SET {assignments}
            FROM previous
            WHERE jobs.id = previous.id AND previous.status = ANY({eligible}::text[]) {held}
            RETURNING jobs.*, previous.status AS previous_status
        ),
        history AS (
            INSERT INTO job_events (job_id, type, from_status, to_status, details)
            SELECT id, {params.add(event.value)}, previous_status, status, {params.add(details or {})}::jsonb FROM moved
        )
        SELECT * FROM moved
        """,
        *params.values,
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
        EventType.JOB_STARTED,
        changes={"attempts": Added(1), "started_at": NOW, "worker_id": worker_id},
        from_statuses=allowed,
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
    fallback_reason: str | None = None,
    structure_score: float | None = None,
    flagged: bool = False,
) -> Job | None:
    """processing → succeeded; with `worker_id`, only while that worker still holds the job.

    `fallback_reason` says why `engine` is not the tier's own; `structure_score` is the structure guard's
    verdict on the output (None when it did not look), `flagged` whether it was below the threshold.
    """
    return await _transition(
        connection,
        job_id,
        JobStatus.SUCCEEDED,
        EventType.JOB_SUCCEEDED,
        changes={
            "output_key": output_key,
            "output_content_type": content_type,
            "cost": Added(cost),  # an earlier attempt that was billed and failed has already added its cost
            "engine": engine,
            "fallback_reason": fallback_reason,
            "structure_score": structure_score,
            "flagged": flagged,
            "completed_at": NOW,
            "error_code": None,
            "error_message": None,
        },
        owner=worker_id,
        details={
            "output_key": output_key,
            "engine": engine,
            "cost": str(cost),
            "fallback_reason": fallback_reason,
            "structure_score": structure_score,
            "flagged": flagged,
        },
    )


async def fail(
    connection: Queryable,
    job_id: uuid.UUID,
    *,
    code: str,
    message: str,
    worker_id: str | None = None,
    cost: Decimal = Decimal("0"),
    structure_score: float | None = None,
) -> Job | None:
    """processing → failed; `cost` is what the failed attempt was billed, added to the job's. A
    `structure_score` says the structure guard failed the output: the job is flagged with it."""
    changes: dict[str, Any] = {"error_code": code, "error_message": message, "completed_at": NOW, "cost": Added(cost)}
    details: dict[str, Any] = {"error_code": code, "error_message": message, "cost": str(cost)}
    if structure_score is not None:
        changes |= {"structure_score": structure_score, "flagged": True}
        details["structure_score"] = structure_score
    return await _transition(
        connection, job_id, JobStatus.FAILED, EventType.JOB_FAILED, changes=changes, owner=worker_id, details=details
    )


async def schedule_retry(
    connection: Queryable,
    job_id: uuid.UUID,
    *,
    code: str,
    message: str,
    delay_ms: int,
    worker_id: str | None = None,
    cost: Decimal = Decimal("0"),
) -> Job | None:
    """processing → queued for another attempt; `cost` is what the failed one was billed, added to the job's."""
    return await _transition(
        connection,
        job_id,
        JobStatus.QUEUED,
        EventType.JOB_RETRYING,
        changes={"error_code": code, "error_message": message, "worker_id": None, "cost": Added(cost)},
        owner=worker_id,
        details={"error_code": code, "error_message": message, "delay_ms": delay_ms, "cost": str(cost)},
    )


async def cancel(connection: Queryable, job_id: uuid.UUID) -> Job | None:
    return await _transition(
        connection, job_id, JobStatus.CANCELED, EventType.JOB_CANCELED, changes={"completed_at": NOW}
    )
