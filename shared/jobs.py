"""The jobs repository: creating jobs (with their announcement), finding them, listing them.

State changes live in shared/transitions.py."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from shared.broker import OutgoingMessage
from shared.db import Queryable
from shared.domain import JobStatus, Style, Tier
from shared.errors import InvalidField
from shared.outbox import Staged, outbox_arguments


@dataclass(frozen=True)
class Job:
    id: uuid.UUID
    asset_id: uuid.UUID
    prompt: str
    tier: Tier
    style: Style
    status: JobStatus
    attempts: int
    worker_id: str | None
    engine: str | None
    output_key: str | None
    output_content_type: str | None
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    request_fingerprint: str | None
    cost: Decimal
    trace_id: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Job:
        return cls.from_values(dict(record))

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Job:
        values.update(tier=Tier(values["tier"]), style=Style(values["style"]), status=JobStatus(values["status"]))
        return cls(**values)


@dataclass(frozen=True)
class NewJob:
    asset_id: uuid.UUID
    prompt: str
    tier: Tier
    style: Style
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    trace_id: str | None = None


_INSERT_JOB = """
WITH job AS (
    INSERT INTO jobs (id, asset_id, prompt, tier, style, status, idempotency_key, request_fingerprint, trace_id)
    VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8)
    RETURNING *
), history AS (
    INSERT INTO job_events (job_id, type, to_status, details)
    SELECT id, 'job.queued', 'queued', jsonb_build_object('tier', tier) FROM job
)
"""
_ANNOUNCE = """
, announced AS (
    INSERT INTO outbox (message_id, exchange, routing_key, body, headers, expiration_ms)
    VALUES ($9, $10, $11, $12, $13, $14)
    RETURNING id
)
SELECT job.*, (SELECT id FROM announced) AS outbox_id FROM job
"""


def _job_arguments(new: NewJob, job_id: uuid.UUID) -> tuple[Any, ...]:
    return (
        job_id,
        new.asset_id,
        new.prompt,
        new.tier.value,
        new.style.value,
        new.idempotency_key,
        new.request_fingerprint,
        new.trace_id,
    )


async def insert_job(connection: Queryable, new: NewJob, *, job_id: uuid.UUID | None = None) -> Job:
    """Insert a queued job with its first history row, in one statement."""
    record = await connection.fetchrow(_INSERT_JOB + "SELECT * FROM job", *_job_arguments(new, job_id or uuid.uuid4()))
    assert record is not None  # INSERT ... RETURNING always returns the row
    return Job.from_record(record)


async def insert_announced_job(
    connection: Queryable, new: NewJob, *, job_id: uuid.UUID, announce: OutgoingMessage
) -> tuple[Job, Staged]:
    """Insert a queued job, its history row and the message announcing it, in one atomic statement.

    One statement is one round trip (and one span) on the busiest path of the API.
    """
    record = await connection.fetchrow(
        _INSERT_JOB + _ANNOUNCE,
        *_job_arguments(new, job_id),
        *outbox_arguments(announce),
    )
    assert record is not None  # INSERT ... RETURNING always returns the row
    values = dict(record)
    outbox_id = values.pop("outbox_id")
    return Job.from_values(values), Staged(outbox_id, announce)


async def find_stuck(connection: Queryable, *, liveness_s: float, timeout_s: float, limit: int = 100) -> list[Job]:
    """Jobs `processing` whose worker is gone (stopped, or silent for `liveness_s`), or that have run
    past `timeout_s`, which a live worker would have cut short itself: its loop must be wedged.
    """
    records = await connection.fetch(
        """
        SELECT jobs.* FROM jobs LEFT JOIN workers ON workers.id = jobs.worker_id
        WHERE jobs.status = 'processing'
          AND jobs.started_at < now() - make_interval(secs => $1)
          AND (workers.id IS NULL OR workers.stopped_at IS NOT NULL
               OR workers.last_seen < now() - make_interval(secs => $1)
               OR jobs.started_at < now() - make_interval(secs => $2))
        ORDER BY jobs.started_at
        LIMIT $3
        """,
        liveness_s,
        timeout_s,
        limit,
    )
    return [Job.from_record(record) for record in records]


async def get_job(connection: Queryable, job_id: uuid.UUID) -> Job | None:
    record = await connection.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
    return Job.from_record(record) if record else None


async def find_by_idempotency_key(connection: Queryable, key: str) -> Job | None:
    record = await connection.fetchrow("SELECT * FROM jobs WHERE idempotency_key = $1", key)
    return Job.from_record(record) if record else None


async def history(connection: Queryable, job_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            "SELECT type, from_status, to_status, details, created_at FROM job_events WHERE job_id = $1 ORDER BY id",
            job_id,
        )
    )


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


def encode_cursor(job: Job) -> str:
    return base64.urlsafe_b64encode(f"{job.created_at.isoformat()}|{job.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidField("cursor is not one this API issued", field="cursor") from error


async def list_jobs(
    connection: Queryable,
    *,
    status: JobStatus | None = None,
    tier: Tier | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id) so pages stay stable under inserts."""
    after = decode_cursor(cursor) if cursor else None
    records = await connection.fetch(
        """
        SELECT * FROM jobs
        WHERE ($1::text IS NULL OR status = $1)
          AND ($2::text IS NULL OR tier = $2)
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $5
        """,
        status.value if status else None,
        tier.value if tier else None,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    jobs = [Job.from_record(record) for record in records[:limit]]
    return Page(jobs, encode_cursor(jobs[-1]) if len(records) > limit else None)
