"""Luster's latency with an idle worker: from a job's submission to its `job.started`, one job at a time.

An api and one worker (ENGINE=noop, CONCURRENCY=8) on the drain benchmark's prefix; `BENCH_IDLE_JOBS`
jobs (200 by default) are submitted through `POST /jobs` one after the other, each only once the previous
one has succeeded and the worker has sat idle for a moment. The latency of each is PostgreSQL's own
account: `started_at` (the worker's start transaction) minus `created_at` (the api's insert), so the
figure covers the api's commit and confirmed publish, the broker's delivery and the worker's claim.
`bench/drain.py` runs it once a round.

Two of those steps cost the same whoever takes them, and differ from machine to machine with their disks:
a commit waits for PostgreSQL's WAL flush, and a quorum queue delivers a message only once its log is on disk.
`floor` times them alone, one at a time and paced as the jobs are (`FLOOR_SAMPLES` each): a one-row INSERT
committed into a table of its own, and a persistent message of a job.queued's size published to a quorum queue
of its own until its consumer has it. What the latency holds beyond their sum is Luster's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
import uuid

import aio_pika
import aiohttp
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.harness import AMQP_URL, bench_headers, ready, start_api, upload_asset
from bench.harness import DATABASE_URL as BENCH_DATABASE_URL
from shared.topology import QUORUM
from tests.harness.poll import poll

JOBS = int(os.environ.get("BENCH_IDLE_JOBS", "200"))
FLOOR_SAMPLES = 200
FLOOR_QUEUE = "bench-drain.floor"
MESSAGE_BYTES = 400  # a job.queued's body (about 300 bytes) and its headers with the trace context
TARGET_P50_MS = 5.0
PAUSE_S = 0.05
NAME, PORT = "drain", 8796
# The drain benchmark's own database (bench/drain.py makes it afresh), beside the other benchmarks' one.
DATABASE_URL = os.environ.get("BENCH_DRAIN_DATABASE_URL", BENCH_DATABASE_URL.rpartition("/")[0] + "/luster_bench_drain")
ENV = {
    "DATABASE_URL": DATABASE_URL,
    "ENGINE": "noop",
    "CONCURRENCY": "8",
    "FAIR_SHARE_QUEUED": "0",
    "OTEL_SDK_DISABLED": "true",
}


async def _one(
    pool: asyncpg.Pool, session: aiohttp.ClientSession, url: str, headers: dict[str, str], asset: str
) -> None:
    body = {"asset_id": asset, "prompt": "bench", "tier": "free"}
    async with session.post(f"{url}/jobs", json=body, headers=headers) as response:
        assert response.status == 202, await response.text()
        job_id = uuid.UUID((await response.json())["job"]["id"])

    async def succeeded() -> bool:
        return bool(await pool.fetchval("SELECT status = 'succeeded' FROM jobs WHERE id = $1", job_id))

    await poll(succeeded, within=30, what="an idle worker's job to succeed", every=0.005)


async def measure(pool: asyncpg.Pool) -> dict[str, float]:
    """p50 and p99 in milliseconds of JOBS submissions to an idle worker."""
    owner = f"idle-{uuid.uuid4().hex[:8]}"
    processes = [start_api(NAME, PORT, ENV), start_api(NAME, 0, ENV, service="worker")]
    url = f"http://127.0.0.1:{PORT}"
    try:
        async with asyncio.timeout(60):
            await ready(url)
        headers = await bench_headers(owner, database_url=DATABASE_URL)
        async with aiohttp.ClientSession() as session:
            asset = await upload_asset(session, url, headers)
            await asyncio.sleep(2)  # the worker's start-up, its first heartbeat and sweep, out of the way
            for _ in range(JOBS):
                await _one(pool, session, url, headers, asset)
                await asyncio.sleep(PAUSE_S)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
    latencies = await pool.fetch(
        "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 AS ms FROM jobs WHERE owner = $1", owner
    )
    await pool.execute("DELETE FROM jobs WHERE owner = $1", owner)
    await pool.execute("DELETE FROM assets WHERE owner = $1", owner)
    values = sorted(float(row["ms"]) for row in latencies)
    return {
        "jobs": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(statistics.quantiles(values, n=100, method="inclusive")[98], 2),
        "max_ms": round(values[-1], 2),
    }


async def _commits(pool: asyncpg.Pool) -> list[float]:
    samples = []
    async with pool.acquire() as connection:
        await connection.execute("CREATE TABLE IF NOT EXISTS bench_floor (id uuid PRIMARY KEY)")
        try:
            for _ in range(FLOOR_SAMPLES):
                began = time.perf_counter()
                await connection.execute("INSERT INTO bench_floor (id) VALUES ($1)", uuid.uuid4())
                samples.append((time.perf_counter() - began) * 1000)
                await asyncio.sleep(PAUSE_S / 5)
        finally:
            await connection.execute("DROP TABLE bench_floor")
    return samples


async def _deliveries() -> list[float]:
    samples: list[float] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        publishing, consuming = await connection.channel(), await connection.channel()
        queue = await consuming.declare_queue(FLOOR_QUEUE, durable=True, arguments=QUORUM)
        arrivals: asyncio.Queue[float] = asyncio.Queue()

        async def arrived(message: AbstractIncomingMessage) -> None:
            arrivals.put_nowait(time.perf_counter())
            await message.ack()

        tag = await queue.consume(arrived)
        try:
            for _ in range(FLOOR_SAMPLES):
                message = aio_pika.Message(b"x" * MESSAGE_BYTES, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                began = time.perf_counter()
                await publishing.default_exchange.publish(message, routing_key=FLOOR_QUEUE)
                samples.append((await asyncio.wait_for(arrivals.get(), 10) - began) * 1000)
                await asyncio.sleep(PAUSE_S / 5)
        finally:
            await queue.cancel(tag)  # before the queue goes, or the broker cancels it with a warning
            await queue.delete(if_unused=False, if_empty=False)
    return samples


async def floor(pool: asyncpg.Pool) -> dict[str, float]:
    """Medians in milliseconds of a commit's round trip and a quorum queue's delivery, and their sum."""
    commit, delivery = statistics.median(await _commits(pool)), statistics.median(await _deliveries())
    return {"commit_ms": round(commit, 2), "delivery_ms": round(delivery, 2), "sum_ms": round(commit + delivery, 2)}


if __name__ == "__main__":

    async def _standalone() -> None:
        pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=2)
        try:
            print(await measure(pool), await floor(pool))
        finally:
            await pool.close()

    asyncio.run(_standalone())
