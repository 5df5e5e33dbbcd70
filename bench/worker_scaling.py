"""How the workers scale: 1, 2 and 4 worker processes on the CPU-bound local engine, side by side.

`python -m bench.worker_scaling` (part of `make bench`) runs one api and N worker processes of one engine
process each (CONCURRENCY=1), waits until the broker counts N consumers on the work queue, submits
`BENCH_SCALING_JOBS` free-tier jobs of a 6 MP listing photo as fast as it can, and measures jobs per
second from the first start to the last completion, as PostgreSQL recorded them. Rounds cycle through
1, 2, 4 so that the machine's noise falls on all alike; each figure is the median of the rounds. Fair
share is off: one owner's backlog is the point. The speed-up of 2 over 1 should be near the number of
cores (fails under `TARGET_TWO` on a machine of two or more); 4 is reported as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from bench.harness import (
    AMQP_URL,
    DATABASE_URL,
    CpuSeconds,
    bench_headers,
    burst,
    cleanup_broker,
    cpu_seconds,
    fresh_database,
    machine_busy_seconds,
    ready,
    servers_cpu_seconds,
    start_api,
    tree_cpu_seconds,
    write_report,
)
from bench.markdown import Report, Section, Verdict, paragraphs, table
from shared.domain import Tier
from shared.topology import Topology
from tests.harness.broker import queue_counts
from tests.harness.poll import poll
from tests.worker.photos import encode, house

JOBS = int(os.environ.get("BENCH_SCALING_JOBS", "96"))
ROUNDS = int(os.environ.get("BENCH_SCALING_ROUNDS", "5"))
WORKERS = (1, 2, 4)
TARGET_TWO = 1.8
NAME, PORT = "scaling", 8795
ENV = {"FAIR_SHARE_QUEUED": "0", "CONCURRENCY": "1", "OTEL_SDK_DISABLED": "true"}
PHOTO = encode(house(3000, 2000))
WORK_QUEUE = Topology(f"bench-{NAME}").work_queue(Tier.FREE)


@contextlib.asynccontextmanager
async def _workers(count: int) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    workers = [start_api(NAME, 0, {**ENV, "WORKER_ID": f"scaling-{n}"}, service="worker") for n in range(count)]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(120)


async def _upload(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
    form = aiohttp.FormData()
    form.add_field("file", PHOTO, filename="listing.jpg", content_type="image/jpeg")
    async with session.post(f"{url}/assets", data=form, headers=headers) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["asset"]["id"])


# From the moment the last worker to come up started its first job, every worker is at work: the rate counts
# the jobs started from then on over the time to the last completion. The job another worker was already in
# the middle of ends inside that window without being counted, which can only make N workers look slower.
_RATE = """
WITH first AS (
    SELECT max(began) AS t0, count(*) AS workers
    FROM (SELECT min(started_at) AS began FROM jobs WHERE owner = $1 GROUP BY worker_id) AS per_worker
)
SELECT count(*) FILTER (WHERE jobs.started_at >= first.t0)::int AS jobs,
       extract(epoch FROM max(jobs.completed_at) - first.t0)::float8 AS seconds,
       first.workers::int AS workers
FROM jobs, first WHERE jobs.owner = $1 GROUP BY first.t0, first.workers
"""


@dataclass(frozen=True)
class CpuSpent(CpuSeconds):
    """CPU seconds used so far, by where: the workers' engine processes, the workers' own, the two servers,
    and the whole machine (the api, the kernel and the benchmark's polling are only in its share)."""

    engines: float
    workers: float
    postgresql: float
    rabbitmq: float
    machine: float

    @classmethod
    def now(cls, workers: list[subprocess.Popen[bytes]]) -> CpuSpent:
        own = sum(cpu_seconds(worker.pid) for worker in workers)
        trees = sum(tree_cpu_seconds(worker.pid) for worker in workers)
        servers = servers_cpu_seconds()
        return cls(trees - own, own, servers["postgresql"], servers["rabbitmq"], machine_busy_seconds())


CPU_COLUMNS = {
    "engines": "engine processes",
    "workers": "worker processes",
    "postgresql": "PostgreSQL",
    "rabbitmq": "RabbitMQ",
    "machine": "machine",
}


@dataclass(frozen=True)
class Round:
    jobs_per_s: float
    workers_at_work: int  # how many of the round's workers started a job before the backlog ran out
    cpu_ms_per_job: dict[str, float]  # by CPU_COLUMNS, over the jobs finished while every worker was at work
    cores_busy: float  # the machine's, meanwhile


async def _round(
    pool: asyncpg.Pool, amqp: AbstractRobustConnection, session: aiohttp.ClientSession, url: str, count: int
) -> Round:
    """Jobs per second of `count` workers through a backlog of JOBS jobs, queued before they start, so that
    the api's work of accepting them is not measured as the workers'."""
    owner = f"scaling-{count}-{os.urandom(4).hex()}"
    headers = await bench_headers(owner)
    asset = await _upload(session, url, headers)

    async def submit(session: aiohttp.ClientSession, url: str, asset_id: str) -> None:
        body = {"asset_id": asset_id, "style": "default", "tier": "free"}
        async with session.post(f"{url}/jobs", json=body, headers=headers) as response:
            assert response.status == 202, await response.text()

    await burst(session, url, asset, submit, count=JOBS, concurrency=8)

    async def all_queued() -> bool:
        ready, _ = await queue_counts(amqp, WORK_QUEUE)
        return ready >= JOBS

    await poll(all_queued, within=60, what=f"{JOBS} jobs in the work queue", every=0.1)
    async with _workers(count) as workers:

        async def progress() -> asyncpg.Record:
            record = await pool.fetchrow(_PROGRESS, owner)
            assert record is not None  # an aggregate always answers
            return record

        async def all_at_work() -> bool:
            record = await progress()
            return bool(record["workers"] == count or record["succeeded"] == JOBS)

        async def drained() -> bool:
            return bool((await progress())["succeeded"] == JOBS)

        await poll(all_at_work, within=600, what=f"{count} workers at work", every=0.02)
        before, finished_before, began = CpuSpent.now(workers), (await progress())["succeeded"], time.monotonic()
        await poll(drained, within=600, what=f"{JOBS} jobs through {count} workers", every=0.2)
        spent, elapsed = CpuSpent.now(workers).since(before), time.monotonic() - began
    measured = await pool.fetchrow(_RATE, owner)
    assert measured is not None, "the round's jobs are gone"
    await pool.execute("DELETE FROM jobs WHERE owner = $1", owner)
    finished = max(JOBS - finished_before, 1)
    cpu = {where: round(seconds / finished * 1000, 1) for where, seconds in asdict(spent).items()}
    return Round(measured["jobs"] / measured["seconds"], measured["workers"], cpu, round(spent.machine / elapsed, 2))


_PROGRESS = """
SELECT count(DISTINCT worker_id) FILTER (WHERE started_at IS NOT NULL)::int AS workers,
       count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded
FROM jobs WHERE owner = $1
"""


async def main() -> dict[str, Any]:
    await fresh_database(DATABASE_URL)  # no other benchmark's rows for this one's relays to publish
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=2)
    amqp = await aio_pika.connect_robust(AMQP_URL)
    api = start_api(NAME, PORT, ENV)
    url = f"http://127.0.0.1:{PORT}"
    rounds: dict[int, list[Round]] = {count: [] for count in WORKERS}
    try:
        async with asyncio.timeout(60):
            await ready(url)
        async with aiohttp.ClientSession() as session:
            for _ in range(ROUNDS):
                for count in WORKERS:
                    rounds[count].append(await _round(pool, amqp, session, url, count))
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(60)
        await pool.close()
        await amqp.close()
        await cleanup_broker([NAME])
    medians = {count: statistics.median(r.jobs_per_s for r in runs) for count, runs in rounds.items()}
    report = {
        "benchmark": f"{JOBS} free-tier jobs of a 6 MP photo through 1, 2 and 4 workers of one engine process each",
        "cpus": os.cpu_count(),
        "jobs_per_s": {str(count): round(rate, 2) for count, rate in medians.items()},
        "speedup": {str(count): round(rate / medians[1], 2) for count, rate in medians.items()},
        "rounds": {str(count): [round(r.jobs_per_s, 2) for r in runs] for count, runs in rounds.items()},
        "workers_at_work": {str(count): [r.workers_at_work for r in runs] for count, runs in rounds.items()},
        "cpu_ms_per_job": {
            str(count): {
                where: round(statistics.median(r.cpu_ms_per_job[where] for r in runs), 1) for where in CPU_COLUMNS
            }
            for count, runs in rounds.items()
        },
        "cores_busy": {
            str(count): round(statistics.median(r.cores_busy for r in runs), 2) for count, runs in rounds.items()
        },
    }
    write_report("worker_scaling", report)
    return report


def over_budget(report: dict[str, Any]) -> str | None:
    two = report["speedup"]["2"]
    if (report["cpus"] or 1) >= 2 and two < TARGET_TWO:
        return f"worker scaling: 2 workers gave {two}× the jobs/s of one (target {TARGET_TWO}×)"
    return None


METHOD = """
One api and 1, 2 or 4 worker processes of one engine process each (`CONCURRENCY=1`). Each round queues a
backlog of free-tier jobs of a 6 MP photo (`BENCH_SCALING_JOBS`) first, then starts the workers: jobs/s counts
the jobs started from the moment the last worker to come up started its first one (every worker at work from
then on) over the time to the last completion, as PostgreSQL recorded them. Rounds cycle 1, 2, 4 so that the
machine's noise falls on all alike; each figure is the median of the rounds. Fair share is off: one owner's
backlog is the point. On a machine of two cores or more, two workers should come near twice one.

Until 2026-12-05 the workers were consuming before the jobs were submitted, and the window began with the
first start: the api accepting the burst shared the cores with the workers at work, which cost two workers
a share of their cores that one worker, with a core to spare, did not pay (1.74× in the last run measured
that way, with 48 jobs). In production the api runs on machines of its own.
"""

LIMITS = """
What holds two workers back on a small machine: the engine's CPU per photo (the engine section's CPU seconds,
6 MP free) shares the cores with everything else a job costs. Timed on each worker's own clock (one run of
2026-12-06 at 8c5ac5f, medians), a lone worker's job spent 2.2 ms claiming the job, 1.5 reading the photo, 162
to 172 in the engine (the photo pickled to its process and back included), 1.6 storing the output, 2.8
committing the success and 0.7 acking, then 1.5 until the next delivery: some 10 ms of 180 away from the
engine, most of it waits on PostgreSQL, RabbitMQ and the disk, with PostgreSQL, RabbitMQ and the api taking
their CPU on the same cores.

The CPU table (since 2026-12-07) shows where the limit lies. Nine tenths of a job's CPU is its engine
process's (which includes receiving the photo and sending the output back); the worker's own process,
PostgreSQL and RabbitMQ take about a tenth together. One worker keeps about one core busy: its engine works
through the jobs one after another, and the rest of each job runs on the other core. Two keep both cores
busy, so they drain at most 2 s ÷ the machine's CPU a job, where one drains 1 s ÷ its own time a job (its
engine's CPU and the gaps between its photos): two workers' speed-up is at most twice one worker's time a job
over the machine's CPU a job, and the tenth the rest of a job costs is what keeps it under 2×. Four workers
on two cores do what two do.

Two changes of 2026-12-06:

- A job gives its slot back when the engine is done with it, and each tier's prefetch is one beyond the slots:
  storing, committing and acking overlap the next job's claim and engine, so between photos the engine waits
  only for the claim and the read (services/worker/consumer.py). Claiming a job ahead of a free slot would
  overlap those too; not done: a job claimed ahead is `processing`, and a worker crash-looping on another job
  would spend that one's attempts as well (scenario 15, docs/reliability.md).
- A worker starts and warms its engine processes before it consumes (services/worker/engines/pool.py).
  Before, a process was spawned as the first jobs reached it and spent 0.41 s (alone) to 0.77 s (two starting
  at once) importing numpy and Pillow before its first photo, which each round's window, opening at the last
  worker's first start, held: a twentieth of a two-worker round against a fortieth of a one-worker round.

Two workers against one, five rounds unless noted, same machine and day: 1.71× and 1.77× before (three rounds
each; four workers 1.63× and 1.72×), 1.68× with the warm-up alone, 1.93× and 1.98× with both (four: 1.96×,
1.98×). Single rounds of the last two runs ranged from 1.74× to 2.12×: read the rounds, not one figure.
For production: one worker replica per vCPU (`CONCURRENCY` = vCPUs), scaled out on queue depth
(docs/operations.md §6, docs/scale.md).
"""


def _rounds(rates: list[float]) -> str:
    return ", ".join(f"{rate:.2f}" for rate in rates)


def _cpu(report: Report) -> list[str]:
    """Where a job's CPU went, while every worker was at work (reports from before 2026-12-07 have none)."""
    if "cpu_ms_per_job" not in report:
        return []
    rows = [
        (
            count,
            *(f"{spent[where]:.1f}" for where in CPU_COLUMNS),
            f"{report['cores_busy'][count]:.2f}",
        )
        for count, spent in report["cpu_ms_per_job"].items()
    ]
    heading = ("workers", *(f"{name} ms/job" for name in CPU_COLUMNS.values()), "cores busy")
    return [
        "CPU per job, medians of the rounds, over the jobs finished while every worker was at work: the engine "
        "processes (the workers' children), the workers' own processes, every PostgreSQL and RabbitMQ process, "
        "and the whole machine (the api, the kernel and the benchmark's polling are in its share only); and "
        "how many of the machine's cores were busy meanwhile.",
        table(heading, rows),
    ]


def section(report: Report | None) -> Section:
    title, command = "Workers, one to four", "python -m bench.worker_scaling"
    if report is None:
        return Section(title, command, METHOD)
    rows = [
        (
            count,
            f"{rate:.2f}",
            _rounds(report["rounds"][count]),
            ", ".join(str(n) for n in report["workers_at_work"][count]),
            f"{report['speedup'][count]:.2f}×",
        )
        for count, rate in report["jobs_per_s"].items()
    ]
    results = paragraphs(
        f"This run: {report['benchmark']}; {report['cpus']} CPUs, shared with the api, PostgreSQL and RabbitMQ.",
        table(("workers", "jobs/s", "rounds", "workers that started a job", "speed-up"), rows),
        *_cpu(report),
        LIMITS,
    )
    verdict = Verdict(
        f"two workers at least {TARGET_TWO}× one worker's jobs/s (on two cores or more)",
        f"{report['speedup']['2']:.2f}×",
        over_budget(report),
    )
    return Section(title, command, METHOD, results, verdict)


if __name__ == "__main__":
    problem = over_budget(asyncio.run(main()))
    if problem:
        raise SystemExit(problem)
