"""Luster's worker against Dramatiq and Celery, draining one backlog of no-op jobs with the monitor consuming.

`python -m bench.drain` (part of `make bench`) puts `BENCH_DRAIN_JOBS` queued jobs (5,000 by default) of a
64×48 photo into PostgreSQL, the same rows for every system (each job with its job.queued history row),
and one message per job into the system's own queue; then it starts one consumer process of concurrency 8
and times, from PostgreSQL's records, the first start to the last success:

- Luster: `python -m services.worker` with ENGINE=noop and CONCURRENCY=8;
- Dramatiq: `dramatiq --processes 1 --threads 8`, an async actor on its AsyncIO middleware's loop;
- Celery: `celery worker --pool threads --concurrency 8`: one process, as the other two are (prefork
  would be eight, each a full interpreter on this machine's cores, another thing to measure).

The baselines do Luster's work per job with Luster's own code (bench/baselines/job.py): the same two
transactions with their history and outbox rows, the same storage, the same re-encode, the same events to
the events exchange, each publish confirmed. The monitor consumes every event throughout. Rounds cycle
Luster, Dramatiq, Celery; each figure is the median of `BENCH_DRAIN_ROUNDS` (3). Each round also measures
Luster's idle latency (bench/idle_latency.py). The report goes to bench/results/drain.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import asyncpg

from bench import idle_latency
from bench.harness import (
    AMQP_URL,
    ROOT,
    UPLOADS,
    WORK_DIR,
    CpuReading,
    _photo,
    cleanup_broker,
    forget_jobs,
    fresh_database,
    stop,
    write_report,
)
from bench.idle_latency import DATABASE_URL
from bench.markdown import Report, Section, Verdict, paragraphs, spread_percent, table
from shared import jobs
from shared.assets import insert_asset
from shared.broker import Broker, event_message
from shared.domain import Style, Tier
from shared.events import JobQueued, make_event
from shared.jobs import NewJob
from shared.storage.local import LocalStore
from shared.topology import Topology
from tests.harness.poll import poll

JOBS = int(os.environ.get("BENCH_DRAIN_JOBS", "5000"))
ROUNDS = int(os.environ.get("BENCH_DRAIN_ROUNDS", "3"))
TARGET = 1.2
NAME = "drain"
PREFIX = f"bench-{NAME}"
MONITOR_PORT = 8797
QUEUES = {"dramatiq": f"{PREFIX}-dramatiq", "celery": f"{PREFIX}-celery"}
PHOTO = _photo(64, 48)
# Every process of the benchmark: the worker's settings, which the baselines read as well.
ENV = {
    "DATABASE_URL": DATABASE_URL,
    "AMQP_URL": AMQP_URL,
    "BROKER_PREFIX": PREFIX,
    "UPLOADS_DIR": str(UPLOADS),
    "OUTPUTS_DIR": str(WORK_DIR / "drain-outputs"),
    "LOG_LEVEL": "WARNING",
    "OTEL_SDK_DISABLED": "true",
    "ENGINE": "noop",
    "CONCURRENCY": "8",
    "FAIR_SHARE_QUEUED": "0",
    "ADMIN_PASSWORD": "bench-drain-admin",
}
COMMANDS = {
    "luster": [sys.executable, "-m", "services.worker"],
    "dramatiq": [
        *(sys.executable, "-m", "dramatiq", "bench.baselines.dramatiq_app"),
        "--processes",
        "1",
        "--threads",
        "8",
    ],
    "celery": [
        *(sys.executable, "-m", "celery", "-A", "bench.baselines.celery_app", "worker", "--pool", "threads"),
        *("--concurrency", "8", "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"),
    ],
}


def spawn(label: str, command: Sequence[str], extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process of the benchmark's, its output in var/bench/<label>.log."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log = (WORK_DIR / f"{label}.log").open("ab")
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV, **(extra or {})}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


async def _backlog(pool: asyncpg.Pool, owner: str) -> list[NewJob]:
    """The asset (its row and its file) and JOBS queued jobs on it: the same rows whichever system drains them."""
    asset_id = uuid.uuid4()
    key = f"{asset_id}.jpg"
    uploads = LocalStore(UPLOADS)
    await uploads.ensure_root()  # a fresh checkout has no var/bench/uploads: this benchmark may run alone
    await uploads.put(key, PHOTO)
    await insert_asset(
        pool,
        asset_id=asset_id,
        filename="drain.jpg",
        content_type="image/jpeg",
        size_bytes=len(PHOTO),
        width=64,
        height=48,
        sha256="0" * 64,
        storage_key=key,
        owner=owner,
    )
    return [NewJob(asset_id=asset_id, prompt="bench", tier=Tier.FREE, style=Style.DEFAULT, owner=owner)] * JOBS


async def _insert(pool: asyncpg.Pool, backlog: list[NewJob]) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in backlog]
    for start in range(0, len(ids), 200):
        chunk = zip(backlog[start : start + 200], ids[start : start + 200], strict=True)
        await asyncio.gather(*(jobs.insert_job(pool, new, job_id=job_id) for new, job_id in chunk))
    return ids


def _queued(new: NewJob) -> JobQueued:
    return JobQueued(asset_id=new.asset_id, tier=new.tier, style=new.style, prompt=new.prompt)


async def _enqueue_luster(backlog: list[NewJob], ids: list[uuid.UUID]) -> None:
    """Each job's job.queued, straight into the free work queue: the monitor sees no enqueue in any system."""
    broker = await Broker.connect(AMQP_URL, Topology(PREFIX), name="bench-drain-loader")
    queue = broker.topology.work_queue(Tier.FREE)
    try:
        for start in range(0, len(ids), 200):
            chunk = zip(backlog[start : start + 200], ids[start : start + 200], strict=True)
            events = [make_event(_queued(new), job_id=job_id) for new, job_id in chunk]
            messages = [event_message(event, exchange="", routing_key=queue) for event in events]
            await asyncio.gather(*(broker.publish_raw(message) for message in messages))
    finally:
        await broker.close()


def _enqueue_dramatiq(ids: list[uuid.UUID]) -> None:
    from bench.baselines.dramatiq_app import drain_job

    for job_id in ids:
        drain_job.send(str(job_id))


def _enqueue_celery(ids: list[uuid.UUID]) -> None:
    from bench.baselines.celery_app import drain_job

    for job_id in ids:
        drain_job.apply_async(args=[str(job_id)])


async def _enqueue(system: str, backlog: list[NewJob], ids: list[uuid.UUID]) -> None:
    if system == "luster":
        await _enqueue_luster(backlog, ids)
    elif system == "dramatiq":
        await asyncio.to_thread(_enqueue_dramatiq, ids)
    else:
        await asyncio.to_thread(_enqueue_celery, ids)


async def _depth(queue: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        declared = await (await connection.channel()).declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def _monitor_caught_up() -> None:
    """The monitor's queue empty, so that no round pays for the previous round's events."""
    queue = Topology(PREFIX).monitor_queue

    async def empty() -> bool:
        return await _depth(queue) == 0

    await poll(empty, within=600, what="the monitor to catch up", every=0.5)


async def _until(
    check: Callable[[], Awaitable[bool]], process: subprocess.Popen[bytes], what: str, *, every: float = 0.2
) -> None:
    async def done() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what}: the consumer exited with {process.returncode}")
        return await check()

    await poll(done, within=1800, what=what, every=every)


_SUCCEEDED = "SELECT count(*) FROM jobs WHERE owner = $1 AND status = 'succeeded'"


async def _round(pool: asyncpg.Pool, system: str) -> dict[str, float]:
    """JOBS jobs through one consumer process of `system`: jobs/s from the first start to the last success,
    and the CPU each job took, by where it was spent, from the first start on (not the consumer's start-up)."""
    await _forget(pool)
    owner = f"drain-{system}-{uuid.uuid4().hex[:8]}"
    backlog = await _backlog(pool, owner)
    ids = await _insert(pool, backlog)
    await _enqueue(system, backlog, ids)
    began = time.perf_counter()
    consumer = spawn(f"{NAME}-{system}", COMMANDS[system])
    try:

        async def started() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM jobs WHERE owner = $1 AND status <> 'queued'", owner))

        async def drained() -> bool:
            left = "SELECT count(*) FROM jobs WHERE owner = $1 AND status <> 'succeeded'"
            return not await pool.fetchval(left, owner)

        await _until(started, consumer, f"the first job through {system}", every=0.02)
        before = CpuReading.now(consumer.pid)
        finished_before = await pool.fetchval(_SUCCEEDED, owner)
        await _until(drained, consumer, f"{JOBS} jobs through {system}")
        used = CpuReading.now(consumer.pid).since(before)
        wall = time.perf_counter() - began
    finally:
        stop(consumer)
    span = await pool.fetchval(
        "SELECT extract(epoch FROM max(completed_at) - min(started_at))::float8 FROM jobs WHERE owner = $1", owner
    )
    await _monitor_caught_up()
    cpu = {f"{where}_us_per_job": us for where, us in used.per(JOBS - finished_before).items()}
    return {
        "jobs_per_s": round(JOBS / float(span), 1),
        "drain_s": round(float(span), 2),
        "wall_s": round(wall, 2),
        **cpu,
    }


async def _forget(pool: asyncpg.Pool) -> None:
    """The rows and files of the rounds before (and of the idle latency's jobs), so that every round starts
    from the same database: 5,000 jobs leave some 50,000 rows and row versions behind, which rounds that
    only deleted them stepped over more of each time (bench.harness.forget_jobs)."""
    await forget_jobs(pool, "assets")
    await asyncio.to_thread(shutil.rmtree, WORK_DIR / "drain-outputs", True)


@contextlib.asynccontextmanager
async def _monitor() -> AsyncIterator[None]:
    monitor = spawn(f"{NAME}-monitor", [sys.executable, "-m", "services.monitor"], {"PORT": str(MONITOR_PORT)})
    try:
        queue = Topology(PREFIX).monitor_queue

        async def declared() -> bool:
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                return await _depth(queue) >= 0
            return False

        await poll(declared, within=120, what="the monitor to declare its queue", every=0.5)
        yield
    finally:
        stop(monitor)


async def _cleanup_baseline_queues() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in QUEUES.values():
            for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
                await channel.queue_delete(name)
        await channel.exchange_delete(QUEUES["celery"])


async def main() -> dict[str, Any]:
    await fresh_database(DATABASE_URL)
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=8)
    rounds: dict[str, list[dict[str, float]]] = {system: [] for system in COMMANDS}
    idle: list[dict[str, Any]] = []
    try:
        async with _monitor():
            for _ in range(ROUNDS):
                for system in COMMANDS:
                    rounds[system].append(await _round(pool, system))
                idle.append({**await idle_latency.measure(pool), "floor": await idle_latency.floor(pool)})
                await _monitor_caught_up()
    finally:
        await pool.close()
        await cleanup_broker([NAME])
        await _cleanup_baseline_queues()
    report = _report(rounds, idle)
    write_report(NAME, report)
    return report


def _report(rounds: dict[str, list[dict[str, float]]], idle: list[dict[str, Any]]) -> dict[str, Any]:
    rates = {system: statistics.median(r["jobs_per_s"] for r in results) for system, results in rounds.items()}
    cpu = {
        system: {column: round(statistics.median(r[column] for r in results)) for column in CPU_COLUMNS}
        for system, results in rounds.items()
    }
    faster = max(("dramatiq", "celery"), key=lambda system: rates[system])
    return {
        "benchmark": f"{JOBS} queued no-op jobs of a 64×48 photo through one consumer process of concurrency 8, "
        "monitor consuming; Luster vs Dramatiq and Celery doing the same transitions and confirmed events",
        "cpus": os.cpu_count(),
        "jobs_per_s": {system: round(rate, 1) for system, rate in rates.items()},
        "faster_baseline": faster,
        "ratio_to_faster_baseline": round(rates["luster"] / rates[faster], 2),
        "cpu_us_per_job": cpu,
        "target_ratio": TARGET,
        "idle_latency_ms": {
            "p50": round(statistics.median(r["p50_ms"] for r in idle), 2),
            "p99": round(statistics.median(r["p99_ms"] for r in idle), 2),
            "target_p50": idle_latency.TARGET_P50_MS,
            "floor": round(statistics.median(r["floor"]["sum_ms"] for r in idle), 2),
        },
        "rounds": {**rounds, "idle_latency": idle},
    }


# CPU per job, where it was spent: the consumer's processes, the two servers, the whole machine (the monitor's
# share is in the machine's).
CPU_COLUMNS = {
    "process_us_per_job": "consumer µs/job",
    "postgresql_us_per_job": "PostgreSQL µs/job",
    "rabbitmq_us_per_job": "RabbitMQ µs/job",
    "machine_us_per_job": "machine µs/job",
}


def over_budget(report: dict[str, Any]) -> str | None:
    ratio, p50 = report["ratio_to_faster_baseline"], report["idle_latency_ms"]["p50"]
    problems = []
    if ratio < TARGET:
        problems.append(
            f"drain: Luster drained at {ratio}× the jobs/s of {report['faster_baseline']} (target {TARGET}×)"
        )
    if p50 > idle_latency.TARGET_P50_MS:
        problems.append(f"idle latency: submit → job.started p50 {p50} ms (target {idle_latency.TARGET_P50_MS} ms)")
    return "; ".join(problems) or None


METHOD = f"""
`make bench` installs the baselines from `requirements-bench.lock` (the `bench` extra; they never reach the
service image). A backlog of queued jobs of a 64×48 photo (`BENCH_DRAIN_JOBS`), the same rows for every system
(each job queued with its `job.queued` history row, in a database of the benchmark's own, made afresh each
run, its tables emptied and checkpointed before every round), one message per job in the system's own queue,
then one consumer process of concurrency 8, timed from PostgreSQL's records (first `started_at` to last
`completed_at`) until every job is `succeeded`. The monitor (`python -m services.monitor`) consumes every
event throughout.

- Luster: `python -m services.worker`, `ENGINE=noop` (a test-only engine: the photo decoded and re-encoded as a
  JPEG, cost 0; refused with `ENVIRONMENT=production`), `CONCURRENCY=8`.
- Dramatiq: `dramatiq --processes 1 --threads 8`, an async actor on its AsyncIO middleware's loop.
- Celery: `celery worker --pool threads --concurrency 8`, `acks_late`: one process, as the other two are
  (prefork would be eight interpreters, using both cores for Python work no other system gets).

The baselines do Luster's per-job work with Luster's own code (`bench/baselines/job.py`): `jobstate.start` and
`jobstate.succeed`, each in one transaction with its `job_events` row and an outbox row for its event, the
photo read from the same storage, the same no-op re-encode, the output written the same way, `job.started` and
`job.succeeded` (`make_event` envelopes) published to the events exchange with publisher confirms, and the
outbox rows marked published. A 50-job check found the same rows for all three: per job one `job.queued`, one
`job.started`, one `job.succeeded` history row, two outbox rows, both published, engine `noop`. What still
differs is each framework's own: Luster's work queue is a quorum queue (prefetch 8 per tier), the baselines'
are classic durable queues (Dramatiq's prefetch 16, Celery's 32); Luster's worker also runs its heartbeat,
sweeper, relay and watchdog, and traces every job; and where a baseline runs each job's transaction on its own
and waits for each confirm, Luster's worker commits the state changes under way together in one transaction
and publishes their events without holding the job (below). Rounds cycle Luster, Dramatiq, Celery; each figure is the
median of the rounds (`BENCH_DRAIN_ROUNDS`).

The same run measures Luster's idle latency (`bench/idle_latency.py`): an api and an idle worker, jobs through
`POST /jobs` one at a time (`BENCH_IDLE_JOBS`, each after the previous one has succeeded and a
{idle_latency.PAUSE_S * 1000:.0f} ms pause), latency is `started_at` minus `created_at` as PostgreSQL recorded them.
Each round also times the path's floor on this machine, the two waits any system doing this pays: a one-row
commit (PostgreSQL's WAL flush) and a persistent message through a quorum queue until its consumer has it.
"""

WHY = """
Read one run's ratio with its rounds: a consumer's rounds on this kind of machine spread by up to a fifth either
side of their median, so only medians of rounds run side by side are a result. Until 2026-12-05 the three
were close (1.06× that day, five rounds): the baselines call Luster's own per-job code, and a py-spy profile
of each consumer put most of its time there (asyncpg's statements with their BEGIN and COMMIT, the confirmed
publishes, the atomic output write: a temporary file, fsync, rename, in a thread), with the consumer process
holding about 80 % of one core. What separates them now is Luster's worker, not the per-job code:

- **Group commit** (`shared/groupcommit.py`): the state changes under way at the same time (eight jobs in
  flight each make two) share one transaction. Each runs its UPDATE and history row in its
  own task on the group's connection; their outbox rows go in one INSERT, and one COMMIT makes them all
  durable. A lone change commits alone, without waiting for company, so the idle latency is what it was.
  A group that fails before its COMMIT runs each change again alone; a COMMIT cut off by a lost connection
  is raised to every change in it, never run again (tests/shared/test_groupcommit.py).
- **Events published off the job's path**: a change's events are published after its COMMIT while the job
  goes on to its engine run or its ack; the confirms only mark the outbox rows, and what is left unmarked
  the relay publishes. A baseline awaits each confirm before going on, as `outbox.transaction` does.

Where the machine goes (the CPU table, first measured 2026-12-06 at 376ea8b): the three keep the machine about
equally busy (1.47, 1.55 and 1.57 of its two cores in that run, the monitor and the bench's polling included),
so jobs/s follows the machine column, as ingest's requests/s does. Luster's job took 6,766 µs of the machine,
Dramatiq's 7,606, Celery's 8,222: 1.12× less than the faster baseline, and less in every column (the worker
process 3,720 against 4,232; PostgreSQL 1,188 against 1,540, the group commit's doing). Short runs of the same
day measured Luster at 5,450 to 5,490 µs a job and Dramatiq at 6,870 (1.25×): every system's CPU per job moves
by a fifth from hour to hour on this machine, and a ratio this close to its target crosses it with them.
Until then the rounds only deleted their rows, and these machines run PostgreSQL with autovacuum off: after
nine rounds `outbox` held 183,000 dead rows and `jobs` and `job_events` 136,800 each (some 150 MB against
128 MB of shared buffers), and every round stepped over more of them than the one before. Rounds fell through
every run for all three (the previous page's Luster, at 18989b6: 193.6, 183.4, 142.9, 156.2, 150.5), and the
bloat cost the baselines more than Luster (likely because their transaction per change touches the bloated
tables more often than a group commit does): the same hour, three rounds each, measured 1.36× with deleting
rounds and 1.19× from emptied tables, where the baselines drained 152 to 203 jobs/s before and 195 to 224
after. Every round now starts from emptied, checkpointed tables (`bench.harness.forget_jobs`).

In exploratory runs (3,000 and 5,000 jobs, not on this page), Luster drained 173 and 183 jobs/s before, 200
to 254 with the group commit, and 257 and 326 with the publishing moved off the job's path as well, while
Dramatiq's rounds in the same runs moved between 159 and 246: the machine's own spread, which is why the
figure above is a median of five rounds side by side. Either framework could be given the same with a layer
of its own that batches across the jobs its threads run; that layer is what Luster's worker is, and the
baselines run jobs as their frameworks do.

Two changes of 2026-12-06 (after 56181e6) are in code the baselines call too (`bench/baselines/job.py`
publishes and marks through Luster's outbox): the marks of 50 ms written by one UPDATE, and a publish put
straight onto aio-pika's aiormq channel. The same hour, five rounds each: Luster 213.7 jobs/s before and 242.5
after (its worker's CPU a job 3,682 and 3,426 µs, PostgreSQL's 1,268 and 824), Dramatiq 161.8 and 203.8
(5,220 and 4,272 µs; PostgreSQL 1,810 and 1,344): ratios of 1.31× and 1.19×, which is the rounds' spread,
not the change, which every system got.

What did not help (2026-12-07, not this page's run: rounds of Luster's worker from two checkouts alternating,
5,000 jobs each, the monitor consuming; medians): reading a job's photo while the job is claimed (its asset row
and the read overlapping the start transition) drained 202 jobs/s against 220 for the code as it is (six rounds
each); a prefetch of twice the slots instead of one beyond them, 202 against 212 (three each); a GIL switch
interval of 0.5 ms instead of 5, 182 against 199 (four each). In all 26 rounds jobs/s times the machine's CPU a
job came to 1.47 to 1.55 cores: the drain is bound by the CPU each job costs, not by any one wait, so it moves
with how fast the machine is that minute (the same code drained 172 to 320 jobs/s within the hour, its worker
spending 2,584 to 4,924 µs of CPU a job), and only less CPU a job raises it. In the worker, py-spy (samples
holding the GIL, one round) finds no one place to cut: the two transitions take 27 % of its Python time
(asyncpg 11 %), publishing the events 12 %, the no-op engine's re-encode 8 %, reading and writing photos 7 %.

The idle latency moves with the machine too: 3.4 to 4.5 ms on the machines measured before 2026-12-07, 4.6 to
5.3 ms that day on an Intel Xeon whose floor (the table's third row) was 2.0 to 2.1 ms. Timing each step there
(100 jobs, probes not kept), from the api's commit: 0.7 ms while the api writes its answer, before the job's
announcement is published (aiormq hands a publish's frames to a writer task, which sends them a turn of the
loop later); 0.4 ms to the socket; 2.5 ms through the broker to the worker's reader, against the floor's 1.5
to 1.7 (the worker's process wakes from idle, and its reader passes the frames on); 0.3 ms to the worker's
callback and 0.6 ms to its BEGIN. Sending the announcement before the answer (two turns of the loop) measured
0.1 to 0.2 ms sooner as the median of paired runs, within their noise: not kept.
"""


def section(report: Report | None) -> Section:
    title, command = "Drain: Luster's worker against Dramatiq and Celery", "python -m bench.drain"
    if report is None:
        return Section(title, command, METHOD)
    rates, ratio, faster = report["jobs_per_s"], report["ratio_to_faster_baseline"], report["faster_baseline"]
    rounds = {system: [r["jobs_per_s"] for r in report["rounds"][system]] for system in rates}
    spread = max(spread_percent(values, rates[system]) for system, values in rounds.items())
    results = paragraphs(
        f"This run: {report['benchmark']}; {report['cpus']} CPUs shared with PostgreSQL, RabbitMQ, the monitor and "
        "the bench.",
        table(
            ("consumer", "jobs/s (median)", "rounds (jobs/s)"),
            [(system.capitalize(), rate, ", ".join(map(str, rounds[system]))) for system, rate in rates.items()],
        ),
        f"Luster ÷ the faster baseline ({faster.capitalize()}): **{ratio}×**; the rounds lie within "
        f"±{spread:.0f} % of their medians. {_cycles(rounds, faster)}",
        _cpu_table(report),
        _idle_table(report),
        WHY,
    )
    idle = report["idle_latency_ms"]
    verdict = Verdict(
        f"Luster at least {TARGET}× the faster baseline's jobs/s, and idle latency p50 at most {idle['target_p50']} ms",
        f"{ratio}×, idle p50 {idle['p50']} ms",
        over_budget(report),
    )
    return Section(title, command, METHOD, results, verdict)


def _cycles(rounds: dict[str, list[float]], faster: str) -> str:
    """Each Luster round against the faster baseline's round of the same cycle, a minute apart at most: the
    machine's speed moves all three together from minute to minute, which these ratios do not see."""
    ratios = [round(luster / baseline, 2) for luster, baseline in zip(rounds["luster"], rounds[faster], strict=True)]
    return (
        f"Cycle by cycle, against {faster.capitalize()}'s round of the same cycle: "
        f"{', '.join(f'{ratio}×' for ratio in ratios)} (median {statistics.median(ratios):.2f}×; the target is "
        "judged on the medians above)."
    )


def _cpu_table(report: Report) -> str:
    """Where a job's CPU went, medians of the rounds, from each round's first start to its last success."""
    if "cpu_us_per_job" not in report:  # a report from before it was measured
        return ""
    rows = [
        (system.capitalize(), *(f"{used[column]:,}" for column in CPU_COLUMNS))
        for system, used in report["cpu_us_per_job"].items()
    ]
    return paragraphs(
        "CPU per job, medians of the rounds, from the round's first start to its last success: the consumer's "
        "processes (Dramatiq's workers are its children), every PostgreSQL and RabbitMQ process, and the whole "
        "machine (the monitor and the bench's own polling are in its share).",
        table(("consumer", *CPU_COLUMNS.values()), rows),
    )


def _idle_table(report: Report) -> str:
    idle, rounds = report["idle_latency_ms"], report["rounds"]["idle_latency"]
    header = ("idle latency, submit → `job.started`", *(f"round {n}" for n in range(1, len(rounds) + 1)), "median")
    rows = [
        ("p50", *(f"{r['p50_ms']} ms" for r in rounds), f"**{idle['p50']} ms** (target ≤ {idle['target_p50']} ms)"),
        ("p99", *(f"{r['p99_ms']} ms" for r in rounds), f"{idle['p99']} ms"),
    ]
    if "floor" in idle:  # a report from before the floor was measured has none
        floors = [r["floor"] for r in rounds]
        own = [r["p50_ms"] - f["sum_ms"] for r, f in zip(rounds, floors, strict=True)]
        rows += [
            ("floor: a commit + a quorum queue's delivery", *(_floor(f) for f in floors), f"{idle['floor']} ms"),
            (
                "Luster's own (p50 less the floor)",
                *(f"{ms:.2f} ms" for ms in own),
                f"{statistics.median(own):.2f} ms",
            ),
        ]
    return table(header, rows)


def _floor(floor: dict[str, float]) -> str:
    return f"{floor['commit_ms']} + {floor['delivery_ms']} ms"


if __name__ == "__main__":
    problem = over_budget(asyncio.run(main()))
    if problem:
        raise SystemExit(problem)
