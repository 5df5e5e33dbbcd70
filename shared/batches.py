"""The batches repository: a listing's photos submitted together, and where its jobs stand.

A batch is its row plus the jobs that name it (`jobs.batch_id`). What it counts, whether it is done and
when it finished are read from those jobs, never stored twice: `completed_at` on the row is set only by
whoever stages the batch's completion webhook, and until then the jobs say it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from shared import idempotency, jobs, outbox, queueing
from shared.broker import Broker
from shared.db import Queryable
from shared.domain import TERMINAL_STATUSES, JobStatus
from shared.errors import NotFound
from shared.jobs import Job, NewJob
from shared.pagination import decode_cursor, encode_cursor


@dataclass(frozen=True)
class Batch:
    id: uuid.UUID
    owner: str
    api_key_id: uuid.UUID | None
    idempotency_key: str | None
    request_fingerprint: str | None
    webhook_url: str | None
    webhook_events: list[str] | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Batch:
        return cls(**dict(record))


@dataclass(frozen=True)
class Progress:
    """How many of a batch's jobs are in each status, and when the last of them finished (once all have)."""

    counts: dict[JobStatus, int] = field(default_factory=dict)
    last_completed_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> bool:
        return self.total > 0 and all(status in TERMINAL_STATUSES for status in self.counts)

    @classmethod
    def of(cls, jobs: Sequence[Job]) -> Progress:
        counts: dict[JobStatus, int] = {}
        for job in jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        if not cls(counts).done:
            return cls(counts)
        return cls(counts, max(job.completed_at or job.updated_at for job in jobs))


@dataclass(frozen=True)
class Page:
    batches: list[tuple[Batch, Progress]]
    next_cursor: str | None


async def insert_batch(
    connection: Queryable,
    *,
    batch_id: uuid.UUID,
    owner: str,
    api_key_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    request_fingerprint: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
) -> Batch:
    """The batch row; raises asyncpg.UniqueViolationError when the owner's idempotency key is taken."""
    record = await connection.fetchrow(
        """
        INSERT INTO batches (id, owner, api_key_id, idempotency_key, request_fingerprint, webhook_url, webhook_events)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING *
        """,
        batch_id,
        owner,
        api_key_id,
        idempotency_key,
        request_fingerprint,
        webhook_url,
        webhook_events,
    )
    assert record is not None  # INSERT ... RETURNING always returns the row
    return Batch.from_record(record)


@dataclass(frozen=True)
class NewBatch:
    owner: str
    api_key_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None


async def queue_batch(
    pool: asyncpg.Pool, broker: Broker, new: NewBatch, items: Sequence[NewJob], *, fair_share_cap: int = 0
) -> tuple[Batch, list[Job]]:
    """The batch and its queued jobs, written in one transaction, their announcements published after it.

    Each job is queued as a single submission is (shared/queueing.py): its history row and announcement
    with it, held over its owner's fair share, which the batch's earlier jobs count towards. Raises
    NotFound (and nothing is written) when an asset is not the owner's, and asyncpg.UniqueViolationError
    when the owner's idempotency key is taken.
    """
    batch_id = uuid.uuid4()
    queued: list[Job] = []
    async with outbox.transaction(pool, broker) as box:
        batch = await insert_batch(box.connection, batch_id=batch_id, **dataclasses.asdict(new))
        for index, (job_id, item) in enumerate(zip(ordered_ids(len(items)), items, strict=True)):
            job = dataclasses.replace(item, batch_id=batch_id)
            announce = queueing.queued_message(broker, job_id, job)
            inserted = await jobs.insert_announced_job(
                box.connection, job, job_id=job_id, announce=announce, fair_share_cap=fair_share_cap
            )
            if inserted is None:  # another owner's asset, or one deleted meanwhile: the whole batch goes
                raise NotFound(f"asset {job.asset_id} does not exist", field=f"jobs.{index}.asset_id")
            queued.append(inserted[0])
            if not inserted[0].held:  # a held job's release publishes it (shared/fairshare.py)
                box.publish_after_commit([inserted[1]])
    return batch, queued


async def get_batch(connection: Queryable, batch_id: uuid.UUID, *, owner: str) -> Batch | None:
    """The batch, only if it is `owner`'s (another owner's batch does not exist for them)."""
    record = await connection.fetchrow("SELECT * FROM batches WHERE id = $1 AND owner = $2", batch_id, owner)
    return Batch.from_record(record) if record else None


async def batch_jobs(connection: Queryable, batch_id: uuid.UUID) -> list[Job]:
    """The batch's jobs in the order they were submitted (see `ordered_ids`)."""
    records = await connection.fetch("SELECT * FROM jobs WHERE batch_id = $1 ORDER BY created_at, id", batch_id)
    return [Job.from_record(record) for record in records]


def ordered_ids(count: int) -> list[uuid.UUID]:
    """Random job ids that sort in submission order.

    A batch's jobs are written in one transaction, so they share `created_at` (now() is the transaction's
    start); ids handed out in ascending order make (created_at, id) the order of the request's list.
    """
    return sorted(uuid.uuid4() for _ in range(count))


async def find_by_idempotency_key(connection: Queryable, owner: str, key: str, *, ttl_s: float) -> Batch | None:
    """The batch this owner created with `key` within the last `ttl_s` seconds."""
    record = await idempotency.find(connection, "batches", owner, key, ttl_s=ttl_s)
    return Batch.from_record(record) if record else None


async def release_expired_idempotency_key(connection: Queryable, owner: str, key: str, *, ttl_s: float) -> None:
    """Free a key whose batch is older than `ttl_s`, so a new request may use it."""
    await idempotency.release_expired(connection, "batches", owner, key, ttl_s=ttl_s)


async def missing_assets(connection: Queryable, asset_ids: Sequence[uuid.UUID], *, owner: str) -> list[uuid.UUID]:
    """Those of `asset_ids` that are not `owner`'s assets, in the order given."""
    found = await connection.fetch("SELECT id FROM assets WHERE owner = $1 AND id = ANY($2::uuid[])", owner, asset_ids)
    present = {record["id"] for record in found}
    return [asset_id for asset_id in asset_ids if asset_id not in present]


async def asset_names(connection: Queryable, asset_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    """The file name each asset was uploaded as, where the upload gave one."""
    records = await connection.fetch("SELECT id, filename FROM assets WHERE id = ANY($1::uuid[])", asset_ids)
    return {record["id"]: record["filename"] for record in records}


async def list_batches(connection: Queryable, *, owner: str, cursor: str | None = None, limit: int = 25) -> Page:
    """Newest first, keyset-paginated on (created_at, id), each with its jobs counted (one query)."""
    after = decode_cursor(cursor) if cursor else None
    records = await connection.fetch(
        """
        SELECT batches.*, counted.counts, counted.last_completed_at
        FROM batches
        CROSS JOIN LATERAL (
            SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb) AS counts,
                   CASE WHEN sum(n) > 0 AND bool_and(status IN ('succeeded', 'failed', 'canceled'))
                        THEN max(finished) END AS last_completed_at
            FROM (
                SELECT status, count(*) AS n, max(coalesce(completed_at, updated_at)) AS finished
                FROM jobs WHERE jobs.batch_id = batches.id GROUP BY status
            ) AS by_status
        ) AS counted
        WHERE owner = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $4
        """,
        owner,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    batches = [_with_progress(record) for record in records[:limit]]
    last = batches[-1][0] if len(records) > limit else None
    return Page(batches, encode_cursor(last.created_at, last.id) if last else None)


def _with_progress(record: asyncpg.Record) -> tuple[Batch, Progress]:
    values = dict(record)
    counts = {JobStatus(status): int(n) for status, n in values.pop("counts").items()}
    progress = Progress(counts, values.pop("last_completed_at"))
    return Batch(**values), progress


async def expire_empty(connection: Queryable, *, days: float) -> int:
    """Remove batches older than `days` whose jobs have all gone (retention removed them); how many."""
    removed = await connection.fetch(
        """
        DELETE FROM batches
        WHERE created_at < now() - make_interval(secs => $1)
          AND NOT EXISTS (SELECT FROM jobs WHERE jobs.batch_id = batches.id)
        RETURNING id
        """,
        days * 86400,
    )
    return len(removed)
