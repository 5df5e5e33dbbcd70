"""Test data: an hour of job history written straight into PostgreSQL, and events published to the broker."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from shared.broker import Broker
from shared.db import Connection
from shared.events import Event
from shared.topology import Topology

JOBS = 60


@dataclass(frozen=True)
class SeededJob:
    id: uuid.UUID
    tier: str
    status: str
    created_at: datetime
    started_at: datetime
    completed_at: datetime


def known_hour(now: datetime) -> list[SeededJob]:
    """60 jobs over the last hour: job i waits 0.1·(i+1) s and runs (i+1) s; every tenth fails.

    So over the hour: queue wait is 0.1..6.0 s (P50 3.0, P95 5.7, P99 5.9 by rank), processing
    1..60 s (P50 30, P95 57, P99 59), 54 succeeded and 6 failed with engine_timeout.
    """
    jobs = []
    for i in range(JOBS):
        created = now - timedelta(seconds=3500 - i * 55)
        started = created + timedelta(seconds=0.1 * (i + 1))
        completed = started + timedelta(seconds=i + 1)
        jobs.append(
            SeededJob(
                uuid.uuid4(),
                "premium" if i % 3 == 0 else "free",
                "failed" if i % 10 == 9 else "succeeded",
                created,
                started,
                completed,
            )
        )
    return jobs


async def _asset(connection: Connection) -> uuid.UUID:
    asset_id = uuid.uuid4()
    await connection.execute(
        """INSERT INTO assets (id, filename, content_type, size_bytes, width, height, sha256, storage_key)
           VALUES ($1, 'seed.jpg', 'image/jpeg', 1, 1, 1, $2, $3)""",
        asset_id,
        hashlib.sha256(asset_id.bytes).hexdigest(),
        f"{asset_id}.jpg",
    )
    return asset_id


async def _job(connection: Connection, asset_id: uuid.UUID, job: SeededJob) -> None:
    error = "engine_timeout" if job.status == "failed" else None
    await connection.execute(
        """INSERT INTO jobs (id, asset_id, prompt, tier, style, status, attempts, error_code, created_at,
                             started_at, completed_at, updated_at)
           VALUES ($1, $2, 'seeded', $3, 'default', $4, 1, $5, $6, $7, $8, $8)""",
        job.id,
        asset_id,
        job.tier,
        job.status,
        error,
        job.created_at,
        job.started_at,
        job.completed_at,
    )
    events = [
        ("job.queued", None, "queued", {}, job.created_at),
        ("job.started", "queued", "processing", {"worker_id": "seed"}, job.started_at),
        (f"job.{job.status}", "processing", job.status, {"error_code": error} if error else {}, job.completed_at),
    ]
    await connection.executemany(
        """INSERT INTO job_events (job_id, type, from_status, to_status, details, created_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [(job.id, kind, source, target, details, at) for kind, source, target, details, at in events],
    )


async def seed_hour(pool: asyncpg.Pool) -> list[SeededJob]:
    async with pool.acquire() as connection, connection.transaction():
        now: datetime = await connection.fetchval("SELECT now()")
        jobs = known_hour(now)
        asset_id = await _asset(connection)
        for job in jobs:
            await _job(connection, asset_id, job)
    return jobs


async def publish(amqp_url: str, topology: Topology, *events: Event) -> None:
    """Publish events the way the services do: confirmed, persistent, routed by type."""
    broker = await Broker.connect(amqp_url, topology, name="test-publisher", startup_timeout=10)
    try:
        for event in events:
            await broker.publish(event, routing_key=event.type.value)
    finally:
        await broker.close()
