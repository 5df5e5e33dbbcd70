"""The jobs repository: creating jobs (with their announcement), finding them, listing them.

State changes live in shared/jobstate.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from shared import idempotency
from shared.db import Queryable
from shared.domain import JobStatus, Style, Tier
from shared.events import EventType
from shared.messages import OutgoingMessage
from shared.outbox import OUTBOX_COLUMNS, Staged, outbox_arguments
from shared.pagination import decode_cursor, encode_cursor
from shared.sql import Parameters


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
    owner: str
    # Over its owner's fair share of the work queues: its announcement waits in the outbox (fairshare.py).
    held: bool = False
    # Why `engine` is not the tier's own (the paid engine could not run), and the structure guard's
    # verdict: its score (None when it did not look) and whether that was below the threshold.
    fallback_reason: str | None = None
    structure_score: float | None = None
    flagged: bool = False
    # The key that submitted it (its secret signs the job's webhooks), where to announce its state
    # changes and which ones (shared/webhooks), and the listing it was submitted with.
    api_key_id: uuid.UUID | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    batch_id: uuid.UUID | None = None

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
    owner: str
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    trace_id: str | None = None
    # The failed job an operator retried as this one; its first history row says so.
    retry_of: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    batch_id: uuid.UUID | None = None


def _queued_job(params: Parameters, new: NewJob, job_id: uuid.UUID, *, fair_share_cap: int = 0) -> str:
    """The CTEs `job` (a queued job, only on an asset of its owner, held when over its owner's fair
    share of the work queues) and `history` (its first event)."""
    row = {
        "id": job_id,
        "asset_id": new.asset_id,
        "prompt": new.prompt,
        "tier": new.tier.value,
        "style": new.style.value,
        "status": JobStatus.QUEUED.value,
        "idempotency_key": new.idempotency_key,
        "request_fingerprint": new.request_fingerprint,
        "trace_id": new.trace_id,
        "owner": new.owner,
        "api_key_id": new.api_key_id,
        "webhook_url": new.webhook_url,
        "webhook_events": new.webhook_events,
        "batch_id": new.batch_id,
    }
    value = {column: params.add(item) for column, item in row.items()}
    value["held"] = _over_fair_share(params, new, cap=fair_share_cap)
    retry_of = params.add(str(new.retry_of) if new.retry_of else None)
    return f"""
    WITH job AS (
        -- Another owner's asset is as good as missing: no row, and nothing else written.
        INSERT INTO jobs ({", ".join(value)})
        SELECT {", ".join(value.values())} FROM assets
        WHERE assets.id = {value["asset_id"]} AND assets.owner = {value["owner"]}
        RETURNING *
    ), history AS (
        INSERT INTO job_events (job_id, type, to_status, details)
        SELECT id, {params.add(EventType.JOB_QUEUED.value)}, status,
               jsonb_strip_nulls(jsonb_build_object('tier', tier, 'retry_of', {retry_of}::text)) FROM job
    )
    """


def _over_fair_share(params: Parameters, new: NewJob, *, cap: int) -> str:
    """True when the owner already has `cap` jobs in the tier's work queue (shared/fairshare.py); never when 0.

    The function takes the owner's lock before it counts (migration 0010): submissions that race do not
    each see the same room.
    """
    return f"luster_over_fair_share({params.add(new.owner)}, {params.add(new.tier.value)}, {params.add(cap)})"


def _announcement(params: Parameters, message: OutgoingMessage) -> str:
    """The CTE `announced`: the outbox row of the job's queued event, written only with the job, and
    left for its release when the job is held."""
    values = ", ".join(params.add(item) for item in outbox_arguments(message))
    return f"""
    , announced AS (
        INSERT INTO outbox ({", ".join(OUTBOX_COLUMNS)}, held_job)
        SELECT {values}, CASE WHEN job.held THEN job.id END FROM job
        RETURNING id
    )
    """


async def insert_job(connection: Queryable, new: NewJob, *, job_id: uuid.UUID | None = None) -> Job | None:
    """Insert a queued job with its first history row, in one statement; None when the owner has no such asset."""
    params = Parameters()
    statement = _queued_job(params, new, job_id or uuid.uuid4()) + "SELECT * FROM job"
    record = await connection.fetchrow(statement, *params.values)
    return Job.from_record(record) if record else None


async def insert_announced_job(
    connection: Queryable, new: NewJob, *, job_id: uuid.UUID, announce: OutgoingMessage, fair_share_cap: int = 0
) -> tuple[Job, Staged] | None:
    """Insert a queued job, its history row and the message announcing it, in one atomic statement;
    None (and nothing written) when the owner has no such asset. A held job's message is not to be
    published now: its release publishes it (shared/fairshare.py).

    One statement is one round trip (and one span) on the busiest path of the API.
    """
    params = Parameters()
    statement = (
        _queued_job(params, new, job_id, fair_share_cap=fair_share_cap)
        + _announcement(params, announce)
        + "SELECT job.*, (SELECT id FROM announced) AS outbox_id FROM job"
    )
    record = await connection.fetchrow(statement, *params.values)
    if record is None:
        return None
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


async def get_job(connection: Queryable, job_id: uuid.UUID, *, owner: str | None = None) -> Job | None:
    """The job; with `owner`, only if it is theirs (another owner's job does not exist for them)."""
    record = await connection.fetchrow(
        "SELECT * FROM jobs WHERE id = $1 AND ($2::text IS NULL OR owner = $2)", job_id, owner
    )
    return Job.from_record(record) if record else None


async def find_by_idempotency_key(connection: Queryable, owner: str, key: str, *, ttl_s: float | None) -> Job | None:
    """The job this owner created with `key` within the last `ttl_s` seconds (None: however long ago)."""
    record = await idempotency.find(connection, "jobs", owner, key, ttl_s=ttl_s)
    return Job.from_record(record) if record else None


async def release_expired_idempotency_key(connection: Queryable, owner: str, key: str, *, ttl_s: float) -> None:
    """Free a key whose job is older than `ttl_s`, so a new request may use it."""
    await idempotency.release_expired(connection, "jobs", owner, key, ttl_s=ttl_s)


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


async def list_jobs(
    connection: Queryable,
    *,
    owner: str | None = None,
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
          AND ($6::text IS NULL OR owner = $6)
        ORDER BY created_at DESC, id DESC
        LIMIT $5
        """,
        status.value if status else None,
        tier.value if tier else None,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
        owner,
    )
    jobs = [Job.from_record(record) for record in records[:limit]]
    last = jobs[-1] if len(records) > limit else None
    return Page(jobs, encode_cursor(last.created_at, last.id) if last else None)
