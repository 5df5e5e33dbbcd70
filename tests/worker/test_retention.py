"""Retention: what is past RETENTION_DAYS leaves storage and the database; unfinished work never does."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.worker import retention
from services.worker.runner import worker_context
from services.worker.settings import WorkerSettings
from shared import jobs
from shared.domain import Style, Tier
from tests.conftest import TEST_OWNER, SettingsFactory, record_asset

pytestmark = pytest.mark.integration


async def job_on(pool: asyncpg.Pool, asset_id: uuid.UUID, status: str, *, age_days: float) -> uuid.UUID:
    job = await jobs.insert_job(pool, jobs.NewJob(asset_id, "Test enhancement", Tier.FREE, Style.DEFAULT, TEST_OWNER))
    assert job is not None
    await pool.execute(
        "UPDATE jobs SET status = $2, created_at = now() - make_interval(days => $3) WHERE id = $1",
        job.id,
        status,
        int(age_days),
    )
    return job.id


async def backdate(pool: asyncpg.Pool, asset_id: uuid.UUID, days: int) -> None:
    await pool.execute("UPDATE assets SET created_at = now() - make_interval(days => $2) WHERE id = $1", asset_id, days)


async def test_old_finished_work_goes_and_everything_else_stays(
    pool: asyncpg.Pool, settings_for: SettingsFactory
) -> None:
    settings = settings_for(WorkerSettings, retention_days=30)
    async with worker_context(settings) as ctx:
        old_done, old_waiting, old_unused, recent = [await record_asset(pool) for _ in range(4)]
        for asset in (old_done, old_waiting, old_unused):
            await backdate(pool, asset.id, 40)
            await ctx.uploads.put(asset.storage_key, b"\xff\xd8 an original")
        await ctx.uploads.put(recent.storage_key, b"\xff\xd8 an original")
        done = await job_on(pool, old_done.id, "succeeded", age_days=40)
        await ctx.outputs.put(f"{done}.jpg", b"\xff\xd8 an output")
        waiting = await job_on(pool, old_waiting.id, "queued", age_days=40)
        fresh = await job_on(pool, recent.id, "succeeded", age_days=1)
        await ctx.outputs.put(f"{fresh}.jpg", b"\xff\xd8 an output")

        await retention.expire(ctx)

        remaining_jobs = {record["id"] for record in await pool.fetch("SELECT id FROM jobs")}
        remaining_assets = {record["id"] for record in await pool.fetch("SELECT id FROM assets")}
        assert remaining_jobs == {waiting, fresh}
        assert remaining_assets == {old_waiting.id, recent.id}
        assert await pool.fetchval("SELECT count(*) FROM job_events WHERE job_id = $1", done) == 0
        assert sorted(await ctx.outputs.keys_older_than(-60)) == [f"{fresh}.jpg"]
        assert sorted(await ctx.uploads.keys_older_than(-60)) == sorted([old_waiting.storage_key, recent.storage_key])


async def test_zero_days_keeps_everything(pool: asyncpg.Pool, settings_for: SettingsFactory) -> None:
    async with worker_context(settings_for(WorkerSettings, retention_days=0)) as ctx:
        asset = await record_asset(pool)
        await backdate(pool, asset.id, 10_000)
        await job_on(pool, asset.id, "failed", age_days=10_000)

        await retention.expire(ctx)

        assert await pool.fetchval("SELECT count(*) FROM jobs") == 1
        assert await pool.fetchval("SELECT count(*) FROM assets") == 1
