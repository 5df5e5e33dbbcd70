"""Luster's latency with an idle worker: from a job's submission to its `job.started`, one job at a time.

An api and one worker (ENGINE=noop, CONCURRENCY=8) on the drain benchmark's prefix; `BENCH_IDLE_JOBS`
jobs (200 by default) are submitted through `POST /jobs` one after the other, each only once the previous
one has succeeded and the worker has sat idle for a moment. The latency of each is PostgreSQL's own
account: `started_at` (the worker's start transaction) minus `created_at` (the api's insert), so the
figure covers the api's commit and confirmed publish, the broker's delivery and the worker's claim.
`bench/drain.py` runs it once a round.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import uuid

import aiohttp
import asyncpg

from bench.harness import DATABASE_URL as BENCH_DATABASE_URL
from bench.harness import bench_headers, ready, start_api, upload_asset
from tests.harness.poll import poll

JOBS = int(os.environ.get("BENCH_IDLE_JOBS", "200"))
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


if __name__ == "__main__":

    async def _standalone() -> None:
        pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=2)
        try:
            print(await measure(pool))
        finally:
            await pool.close()

    asyncio.run(_standalone())
