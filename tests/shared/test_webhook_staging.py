"""Staging webhooks with the state change: the job's filter decides, and the last two jobs of a batch
finishing at once complete it exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import asyncpg
import pytest

from shared import jobs, jobstate
from shared.domain import Style, Tier
from shared.jobs import Job, NewJob
from shared.outbox import Outbox
from shared.topology import Topology
from shared.webhooks import staging
from tests.conftest import TEST_OWNER, record_asset

pytestmark = pytest.mark.integration

TOPOLOGY = Topology("staging-test")
URL = "https://hooks.example.com/luster"


async def _processing_job(pool: asyncpg.Pool, asset_id: uuid.UUID, **webhook: object) -> Job:
    new = NewJob(asset_id, "Brighter", Tier.FREE, Style.DEFAULT, TEST_OWNER, **webhook)  # type: ignore[arg-type]
    async with pool.acquire() as connection:
        job = await jobs.insert_job(connection, new)
        assert job is not None
        started = await jobstate.start(connection, job.id, worker_id="w")
    assert started is not None
    return started


async def _staged(pool: asyncpg.Pool) -> list[dict[str, object]]:
    bodies = await pool.fetch("SELECT body FROM outbox WHERE routing_key = $1 ORDER BY id", TOPOLOGY.webhook_queue)
    return [json.loads(bytes(row["body"]))["data"] for row in bodies]


async def _succeed_and_announce(pool: asyncpg.Pool, job: Job, both_changed: asyncio.Barrier) -> None:
    async with pool.acquire() as connection, connection.transaction():
        done = await jobstate.succeed(
            connection, job.id, output_key="o.jpg", content_type="image/jpeg", cost=Decimal(0), engine="local"
        )
        assert done is not None
        await both_changed.wait()  # neither has committed: each sees the other's job still processing
        await staging.announce(Outbox(connection), TOPOLOGY, done)


async def test_only_the_events_a_job_asked_for_are_staged(pool: asyncpg.Pool) -> None:
    asset = await record_asset(pool)
    quiet = await _processing_job(pool, asset.id)
    filtered = await _processing_job(pool, asset.id, webhook_url=URL, webhook_events=["failed"])
    default = await _processing_job(pool, asset.id, webhook_url=URL)
    for job in (quiet, filtered, default):
        async with pool.acquire() as connection, connection.transaction():
            done = await jobstate.succeed(
                connection, job.id, output_key="o.jpg", content_type="image/jpeg", cost=Decimal(0), engine="local"
            )
            assert done is not None
            await staging.announce(Outbox(connection), TOPOLOGY, done)
    [staged] = await _staged(pool)
    assert (staged["event"], staged["url"]) == ("job.succeeded", URL)
    sent = json.loads(str(staged["body"]))
    assert (sent["type"], sent["data"]["id"], sent["data"]["status"]) == ("job.succeeded", str(default.id), "succeeded")


async def test_the_last_two_jobs_of_a_batch_finishing_at_once_complete_it_once(pool: asyncpg.Pool) -> None:
    asset = await record_asset(pool)
    batch_id = uuid.uuid4()
    await pool.execute("INSERT INTO batches (id, owner, webhook_url) VALUES ($1, $2, $3)", batch_id, TEST_OWNER, URL)
    pair = [await _processing_job(pool, asset.id, batch_id=batch_id) for _ in range(2)]

    barrier = asyncio.Barrier(2)
    await asyncio.gather(*(_succeed_and_announce(pool, job, barrier) for job in pair))

    [completed] = await _staged(pool)
    assert completed["event"] == "batch.completed"
    assert json.loads(str(completed["body"]))["data"] == {
        "id": str(batch_id),
        "total": 2,
        "counts": {"succeeded": 2},
    }
    assert await pool.fetchval("SELECT completed_at IS NOT NULL FROM batches WHERE id = $1", batch_id)
