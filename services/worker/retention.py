"""Retention: photos and outputs older than RETENTION_DAYS leave storage and the database.

Finished jobs older than the cutoff go first (their outputs, then their rows and history), then the
assets no remaining job uses, then the batches no job names any more. Objects are removed before their
rows: a crash in between leaves rows that name missing objects (answered as missing), never objects
that nothing names and nothing sweeps. A job still queued or processing keeps itself and its asset, however old.
"""

from __future__ import annotations

import structlog

from services.worker.context import WorkerContext
from services.worker.output import EXTENSIONS, output_key
from shared import batches, jobs

log = structlog.get_logger()

BATCH = 500


async def expire_jobs(ctx: WorkerContext, *, days: float) -> int:
    """Remove up to BATCH finished jobs older than `days`, with their outputs; returns how many."""
    records = await ctx.pool.fetch(
        """
        SELECT * FROM jobs
        WHERE created_at < now() - make_interval(secs => $1) AND status IN ('succeeded', 'failed', 'canceled')
        ORDER BY created_at LIMIT $2
        """,
        days * 86400,
        BATCH,
    )
    expired = [jobs.Job.from_record(record) for record in records]
    await ctx.outputs.remove([output_key(job, content_type) for job in expired for content_type in EXTENSIONS])
    await ctx.pool.execute("DELETE FROM jobs WHERE id = ANY($1::uuid[])", [job.id for job in expired])
    return len(expired)


async def expire_assets(ctx: WorkerContext, *, days: float) -> int:
    """Remove up to BATCH assets older than `days` that no job uses any more; returns how many."""
    records = await ctx.pool.fetch(
        """
        SELECT id, storage_key FROM assets
        WHERE created_at < now() - make_interval(secs => $1)
          AND NOT EXISTS (SELECT FROM jobs WHERE jobs.asset_id = assets.id)
        ORDER BY created_at LIMIT $2
        """,
        days * 86400,
        BATCH,
    )
    await ctx.uploads.remove([record["storage_key"] for record in records])
    await ctx.pool.execute(
        """
        DELETE FROM assets WHERE id = ANY($1::uuid[])
          AND NOT EXISTS (SELECT FROM jobs WHERE jobs.asset_id = assets.id)
        """,
        [record["id"] for record in records],
    )
    return len(records)


async def expire(ctx: WorkerContext) -> None:
    """Everything past retention, a batch at a time; nothing when RETENTION_DAYS is 0."""
    days = ctx.settings.retention_days
    if days <= 0:
        return
    removed_jobs = removed_assets = 0
    while (batch := await expire_jobs(ctx, days=days)) > 0:
        removed_jobs += batch
    while (batch := await expire_assets(ctx, days=days)) > 0:
        removed_assets += batch
    # A batch goes with its last job (deleting it first would take its jobs with it: ON DELETE CASCADE).
    removed_batches = await batches.expire_empty(ctx.pool, days=days)
    if removed_jobs or removed_assets or removed_batches:
        log.info("retention.expired", jobs=removed_jobs, assets=removed_assets, batches=removed_batches, days=days)
