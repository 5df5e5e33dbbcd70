"""How many events the monitor absorbs, against a bare consumer, with /health probed; and its memory over a long stream.

`python -m bench.monitor_absorption` (part of `make bench`). The monitor consumes every event of the
system (job.queued, started, succeeded… and worker heartbeats), so if it falls behind its bounded queue
drops the oldest events and the dashboard lies. This measures, on a broker prefix of its own:

1. Absorption. `BENCH_MONITOR_ABSORB_EVENTS` job events (30,000 by default: queued, started, succeeded
   for a third as many jobs, interleaved in time as a fleet sends them, built with the project's own
   event constructors, one trace in ten sampled as production's api decides) are loaded into the
   monitor's queue while no monitor runs; then `python -m services.monitor` starts, and events/s is the
   count over the time from its consumer's appearance on the queue until the queue is empty (polled
   with a passive declare); the monitor's own count of job events (/metrics) must then equal what was
   loaded. The monitor runs with production's settings (ENVIRONMENT=production, LOG_LEVEL=INFO, logs as
   JSON to a file); it touches PostgreSQL only in its periodic check, never per event, so the jobs need
   no rows. Each round also reports the CPU time the process spent per event,
   which a machine busy with other work blurs less than the wall clock.
2. The baseline, in alternating rounds: a bare aio-pika consumer process (prefetch 100, an ack per
   message, nothing else: `python -m bench.monitor_absorption bare <queue>`) draining the same messages
   from a queue declared as the monitor's is (classic, bounded, drop-head), timed the same way.
   Target: the monitor at `TARGET_RATIO` of its rate or more.
3. While the monitor absorbs, the bench probes its public /health and the dashboard's JSON
   (/admin/api/overview, with the admin login) every 20 ms each over keep-alive connections.
   Target: /health p99 at most `TARGET_HEALTH_P99_MS`.
4. Memory: a fresh monitor takes `BENCH_MONITOR_EVENTS` events (1,000,000 by default) published at a
   sustained rate (`BENCH_MONITOR_RATE` events/s; unset, half the absorption rate measured above, so
   the queue never fills); its RSS is read from /proc every 10 % of the way (and at 25 %). Target: from
   the 25 % mark to the end it grows by at most `GROWTH_SHARE` of the RSS at 25 %, or `GROWTH_FLOOR_MB`.

Events go straight to the queue through the default exchange: through the events exchange every
job.queued would also fill a work queue no worker drains. Each figure is the median of
`BENCH_MONITOR_ROUNDS` (3) rounds. The report goes to bench/results/monitor_absorption.json.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bench.harness import (
    AMQP_URL,
    DATABASE_URL,
    ROOT,
    WORK_DIR,
    cleanup_broker,
    cpu_seconds,
    start_api,
    stop,
    write_report,
)
from bench.markdown import Report, Section, Verdict, paragraphs, table
from shared.broker import Broker, event_message
from shared.domain import Style, Tier
from shared.events import Event, JobQueued, JobStarted, JobSucceeded, make_event
from shared.messages import OutgoingMessage
from shared.migrate import migrate
from shared.topology import MONITOR_QUEUE_ARGUMENTS, Topology
from tests.harness.poll import poll

EVENTS = int(os.environ.get("BENCH_MONITOR_ABSORB_EVENTS", "30000")) // 3 * 3  # three a job
STREAM = int(os.environ.get("BENCH_MONITOR_EVENTS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_MONITOR_ROUNDS", "3"))
RATE = os.environ.get("BENCH_MONITOR_RATE")
TARGET_RATIO = 0.7
TARGET_HEALTH_P99_MS = 10.0
GROWTH_SHARE, GROWTH_FLOOR_MB = 0.10, 20.0
NAME, PORT = "monitor", 8811
TOPOLOGY = Topology(f"bench-{NAME}")
BARE_QUEUE = f"{TOPOLOGY.prefix}.bare"
BARE_PREFETCH = 100
ADMIN_PASSWORD = "bench-monitor-admin"
ENV = {"ENVIRONMENT": "production", "LOG_LEVEL": "INFO", "ADMIN_PASSWORD": ADMIN_PASSWORD}
PROBES = {"health": "/health", "overview": "/admin/api/overview"}
PROBE_EVERY_S = 0.02
MARKS = (10, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100)
TICK_S = 0.1  # the stream publishes a tick's worth of events at once, then waits for the next tick


def _job(job_id: uuid.UUID, tier: Tier, done: datetime, rng: random.Random) -> Iterator[Event]:
    """One job's queued, started and succeeded, timed as a busy fleet times them."""
    processing = timedelta(seconds=rng.uniform(1.0, 6.0))
    started = done - processing
    queued = started - timedelta(seconds=rng.expovariate(1 / 1.5))
    payloads = (
        (queued, JobQueued(asset_id=uuid.uuid4(), tier=tier, style=Style.DEFAULT, prompt="bright, warm interior")),
        (started, JobStarted(worker_id="bench-worker-1", tier=tier, attempt=1, queued_at=queued)),
        (
            done,
            JobSucceeded(
                worker_id="bench-worker-1",
                tier=tier,
                attempt=1,
                output_key=f"{job_id}.jpg",
                width=1600,
                height=1200,
                cost=Decimal("0.04"),
                engine="local",
                processing_ms=processing.total_seconds() * 1000,
                queued_at=queued,
            ),
        ),
    )
    for at, payload in payloads:
        yield make_event(payload, job_id=job_id).model_copy(update={"occurred_at": at})


def messages(jobs: int, *, span_s: float, rng: random.Random) -> list[OutgoingMessage]:
    """`jobs` jobs finishing over the last `span_s` seconds, their events in time order, to the monitor's queue.

    Every job carries a trace context as a worker's events do; one in ten is sampled, as production decides.
    """
    now = datetime.now(UTC)
    timed: list[tuple[datetime, OutgoingMessage]] = []
    for n in range(jobs):
        job_id, tier = uuid.uuid4(), (Tier.FREE, Tier.PREMIUM)[n % 2]
        flags = "01" if rng.random() < 0.1 else "00"
        trace = {"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-{flags}"}
        for event in _job(job_id, tier, now - timedelta(seconds=rng.uniform(0, span_s)), rng):
            message = event_message(event, exchange="", routing_key=TOPOLOGY.monitor_queue)
            timed.append((event.occurred_at, dataclasses.replace(message, headers={**message.headers, **trace})))
    timed.sort(key=lambda pair: pair[0])
    return [message for _, message in timed]


async def publish(broker: Broker, batch: list[OutgoingMessage], queue: str) -> None:
    """Persistent, each confirmed, a few hundred in flight at a time."""
    for start in range(0, len(batch), 500):
        chunk = batch[start : start + 500]
        await asyncio.gather(*(broker.publish_raw(dataclasses.replace(m, routing_key=queue)) for m in chunk))


class Queue:
    """Ready messages and consumers of one queue, as a passive declare reports them."""

    def __init__(self, channel: AbstractChannel, name: str) -> None:
        self.channel, self.name = channel, name

    async def counts(self) -> tuple[int, int]:
        declared = await self.channel.declare_queue(self.name, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)


def start_monitor() -> subprocess.Popen[bytes]:
    return start_api(NAME, PORT, ENV, service="monitor")


def start_bare() -> subprocess.Popen[bytes]:
    log = (WORK_DIR / f"{NAME}-bare.log").open("wb")
    command = [sys.executable, "-m", "bench.monitor_absorption", "bare", BARE_QUEUE]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=log)


async def _consuming(queue: Queue, process: subprocess.Popen[bytes]) -> float:
    """When the consumer appeared on the queue: the clock starts there, not at the process's start-up."""

    async def seen() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the consumer of {queue.name} exited with {process.returncode}")
        return (await queue.counts())[1] > 0

    await poll(seen, within=120, what=f"a consumer on {queue.name}", every=0.01)
    return time.perf_counter()


async def _drained(queue: Queue) -> float:
    async def empty() -> bool:
        return (await queue.counts())[0] == 0

    await poll(empty, within=1800, what=f"{queue.name} to drain", every=0.02)
    return time.perf_counter()


async def _probe(session: aiohttp.ClientSession, path: str, samples: list[tuple[float, float]]) -> None:
    """GET `path` every PROBE_EVERY_S, (when, milliseconds) per answer; refusals before the app serves are skipped."""
    headers = {} if path == PROBES["health"] else {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PASSWORD)}
    while True:
        began = time.perf_counter()
        try:
            async with session.get(f"http://127.0.0.1:{PORT}{path}", headers=headers) as response:
                await response.read()
            samples.append((began, (time.perf_counter() - began) * 1000))
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(max(0.0, began + PROBE_EVERY_S - time.perf_counter()))


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:  # a monitor that never answered while it absorbed has no latency to report
        raise RuntimeError(f"{len(values)} probe answers while the monitor absorbed: too few to measure")
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p99": round(cuts[98], 2), "samples": len(values)}


@dataclasses.dataclass(frozen=True)
class Absorbed:
    began: float
    ended: float
    cpu_s: float

    def figures(self) -> dict[str, float]:
        seconds = self.ended - self.began
        return {
            "events_per_s": round(EVENTS / seconds, 1),
            "seconds": round(seconds, 2),
            "cpu_us_per_event": round(self.cpu_s / EVENTS * 1e6, 1),
        }


async def _absorb(
    channel: AbstractChannel,
    start: Callable[[], subprocess.Popen[bytes]],
    queue_name: str,
    then: Callable[[], Awaitable[None]] | None = None,
) -> Absorbed:
    """Start the consumer on its loaded queue: from its appearance there until the queue is empty.
    `then` runs before the consumer stops."""
    queue = Queue(channel, queue_name)
    process = start()
    try:
        began = await _consuming(queue, process)
        used = cpu_seconds(process.pid)
        ended = await _drained(queue)
        absorbed = Absorbed(began, ended, cpu_seconds(process.pid) - used)
        if then is not None:
            await then()
        return absorbed
    finally:
        stop(process)


async def _counted(session: aiohttp.ClientSession) -> None:
    """The monitor's own count of job events equals what was loaded: an empty queue is no proof on its own
    (a monitor that dead-lettered everything would empty it just as fast)."""
    admin = {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PASSWORD)}

    async def total() -> float:
        async with session.get(f"http://127.0.0.1:{PORT}/metrics", headers=admin) as response:
            lines = (await response.text()).splitlines()
        return sum(float(line.split()[-1]) for line in lines if line.startswith("luster_job_events_total{"))

    async def all_counted() -> bool:
        return await total() == EVENTS

    await poll(all_counted, within=30, what=f"the monitor to count {EVENTS} job events", every=0.1)


async def _monitor_round(channel: AbstractChannel) -> dict[str, Any]:
    """`_absorb` through the monitor, its /health and dashboard JSON probed meanwhile."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in PROBES}
    async with aiohttp.ClientSession() as session:
        probing = [asyncio.create_task(_probe(session, path, samples[name])) for name, path in PROBES.items()]
        try:
            absorbed = await _absorb(channel, start_monitor, TOPOLOGY.monitor_queue, lambda: _counted(session))
        finally:
            for task in probing:
                task.cancel()
            await asyncio.gather(*probing, return_exceptions=True)
    during = [
        (name, [ms for at, ms in taken if absorbed.began <= at <= absorbed.ended]) for name, taken in samples.items()
    ]
    return {**absorbed.figures(), **{f"{name}_ms": _percentiles(values) for name, values in during}}


async def _bare_round(channel: AbstractChannel) -> dict[str, Any]:
    return (await _absorb(channel, start_bare, BARE_QUEUE)).figures()


async def _rounds(broker: Broker, channel: AbstractChannel) -> dict[str, list[dict[str, Any]]]:
    rounds: dict[str, list[dict[str, Any]]] = {"monitor": [], "bare": []}
    rng = random.Random(13)
    for _ in range(ROUNDS):
        batch = messages(EVENTS // 3, span_s=max(EVENTS / 300, 1.0), rng=rng)
        await publish(broker, batch, TOPOLOGY.monitor_queue)
        rounds["monitor"].append(await _monitor_round(channel))
        await publish(broker, batch, BARE_QUEUE)
        rounds["bare"].append(await _bare_round(channel))
    return rounds


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _stream(broker: Broker, channel: AbstractChannel, rate: float) -> dict[str, Any]:
    """STREAM events at `rate` through a fresh monitor; its RSS at every mark, the deepest backlog seen."""
    queue, rng = Queue(channel, TOPOLOGY.monitor_queue), random.Random(7)
    monitor = start_monitor()
    rss: dict[str, float] = {}
    deepest, published, marks = 0, 0, [(f"{mark}%", STREAM * mark // 100) for mark in MARKS]
    try:
        await _consuming(queue, monitor)
        began = time.perf_counter()
        while published < STREAM:
            jobs = max(1, min(round(rate * TICK_S / 3), (STREAM - published + 2) // 3))
            batch = messages(jobs, span_s=TICK_S * 30, rng=rng)
            await publish(broker, batch, TOPOLOGY.monitor_queue)
            published += len(batch)
            while marks and published >= marks[0][1]:
                rss[marks.pop(0)[0]] = rss_mb(monitor.pid)
                deepest = max(deepest, (await queue.counts())[0])
            await asyncio.sleep(max(0.0, began + published / rate - time.perf_counter()))
        await _drained(queue)
        achieved = published / (time.perf_counter() - began)
        rss["100%"] = rss_mb(monitor.pid)  # again, once every event is in
    finally:
        stop(monitor)
    return {
        "events": published,
        "rate_per_s": round(rate),
        "achieved_per_s": round(achieved),
        "rss_mb": rss,
        "growth_mb": round(rss["100%"] - rss["25%"], 1),
        "max_backlog": deepest,
    }


async def _declare_bare(channel: AbstractChannel) -> None:
    """The baseline's queue, declared as topology.declare declares the monitor's."""
    await channel.declare_queue(BARE_QUEUE, durable=True, arguments=MONITOR_QUEUE_ARGUMENTS)


async def main() -> dict[str, Any]:
    await asyncio.to_thread(migrate, DATABASE_URL)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    broker = await Broker.connect(AMQP_URL, TOPOLOGY, name="bench-monitor-loader")
    # A plain connection to watch the queues: a robust channel answers a repeated passive declare from its cache.
    watcher = await aio_pika.connect(AMQP_URL, client_properties={"connection_name": "bench-monitor-watcher"})
    try:
        channel = await watcher.channel()
        await _declare_bare(channel)
        # What an earlier, interrupted run left would count as this run's events.
        await (await channel.declare_queue(TOPOLOGY.monitor_queue, passive=True)).purge()
        rounds = await _rounds(broker, channel)
        absorbed = statistics.median(r["events_per_s"] for r in rounds["monitor"])
        memory = await _stream(broker, channel, float(RATE) if RATE else absorbed / 2)
    finally:
        await watcher.close()
        await broker.close()
        await _cleanup()
    report = _report(rounds, memory)
    write_report("monitor_absorption", report)
    return report


async def _cleanup() -> None:
    await cleanup_broker([NAME])
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        await (await connection.channel()).queue_delete(BARE_QUEUE)


def _median_of(rounds: list[dict[str, Any]], probe: str) -> dict[str, float]:
    return {q: round(statistics.median(r[f"{probe}_ms"][q] for r in rounds), 2) for q in ("p50", "p99")}


def _report(rounds: dict[str, list[dict[str, Any]]], memory: dict[str, Any]) -> dict[str, Any]:
    rates = {label: statistics.median(r["events_per_s"] for r in results) for label, results in rounds.items()}
    allowed = round(max(GROWTH_SHARE * memory["rss_mb"]["25%"], GROWTH_FLOOR_MB), 1)
    return {
        "benchmark": f"{EVENTS} preloaded job events through the monitor against a bare aio-pika consumer, "
        f"/health and the dashboard JSON probed every {PROBE_EVERY_S * 1000:g} ms; then {memory['events']} "
        "events streamed through a fresh monitor, its RSS sampled",
        "cpus": os.cpu_count(),
        "events_per_s": {label: round(rate, 1) for label, rate in rates.items()},
        "ratio_to_bare": round(rates["monitor"] / rates["bare"], 2),
        "target_ratio": TARGET_RATIO,
        "health_ms": {**_median_of(rounds["monitor"], "health"), "target_p99": TARGET_HEALTH_P99_MS},
        "overview_ms": _median_of(rounds["monitor"], "overview"),
        "memory": {**memory, "allowed_growth_mb": allowed},
        "rounds": rounds,
    }


def over_budget(report: dict[str, Any]) -> str | None:
    problems = []
    if report["ratio_to_bare"] < TARGET_RATIO:
        problems.append(
            f"monitor absorption: {report['events_per_s']['monitor']} events/s, {report['ratio_to_bare']}× "
            f"the bare consumer's {report['events_per_s']['bare']} (target {TARGET_RATIO}×)"
        )
    if (p99 := report["health_ms"]["p99"]) > TARGET_HEALTH_P99_MS:
        problems.append(f"monitor /health under load: p99 {p99} ms (target {TARGET_HEALTH_P99_MS} ms)")
    memory = report["memory"]
    if memory["growth_mb"] > memory["allowed_growth_mb"]:
        problems.append(
            f"monitor memory: RSS grew {memory['growth_mb']} MB from 25 % to the end of {memory['events']} events "
            f"(allowed {memory['allowed_growth_mb']} MB)"
        )
    return "; ".join(problems) or None


METHOD = """
Job events (queued, started, succeeded, interleaved as a fleet sends them, one trace in ten sampled) are loaded
into the monitor's queue while no monitor runs; then the monitor (`python -m services.monitor`, production's
settings) starts, and its rate is the events over the time from its consumer's appearance until the queue is
empty, its own count of job events checked against what was loaded. The baseline, in alternating rounds: a bare
aio-pika consumer process (prefetch 100, an ack per message, nothing else) draining the same messages from a queue
declared as the monitor's. Meanwhile `/health` and the dashboard's JSON (`/admin/api/overview`) are probed every
20 ms. Then a fresh monitor takes a long stream of events at a sustained rate (`BENCH_MONITOR_EVENTS`, a million by
default) while its resident memory is read every tenth of the way. Each figure is the median of the rounds.
"""

WHY = """
What made the monitor fast enough (2026-12-04, measured with cProfile and /proc CPU time): most of its time per
event went on what surrounded the fold, not the fold: a log line, a consume span, an ack frame and its socket
write. Now an ordinary event is decoded and folded synchronously and acknowledged in bulk (every 25 events or
50 ms, never past a message the dead-letter path is still deciding), a consume span is made only for a sampled
trace (an unsampled one is never exported), and the log line is written only for events dead-lettered or
requeued. The dashboard's JSON reuses a snapshot under a second old. What it costs an operator: no per-event log
line from the monitor (its counters and the other services' lines tell the same story).
"""


def section(report: Report | None) -> Section:
    title, command = (
        "Monitor: events absorbed, /health meanwhile, memory over a long stream",
        ("python -m bench.monitor_absorption"),
    )
    if report is None:
        return Section(title, command, METHOD)
    rates, health, overview, memory = (
        report["events_per_s"],
        report["health_ms"],
        report["overview_ms"],
        report["memory"],
    )
    rounds = report["rounds"]
    cpu = {
        label: round(statistics.median(r["cpu_us_per_event"] for r in results))
        for label, results in rounds.items()
        if all("cpu_us_per_event" in r for r in results)
    }
    rows = [
        (label, rate, ", ".join(str(r["events_per_s"]) for r in rounds[label]), cpu.get(label, "—"))
        for label, rate in rates.items()
    ]
    rss = memory["rss_mb"]
    results = paragraphs(
        f"This run: {report['benchmark']}; {report['cpus']} CPUs shared with RabbitMQ and the bench.",
        table(("consumer", "events/s (median)", "rounds", "CPU µs/event"), rows),
        f"Monitor ÷ bare consumer: **{report['ratio_to_bare']}×**. While it absorbed: `/health` p50 "
        f"{health['p50']} ms, p99 {health['p99']} ms; the dashboard's JSON p50 {overview['p50']} ms, "
        f"p99 {overview['p99']} ms.",
        table(("events in", *rss), [("RSS MB", *rss.values())]),
        f"Growth from 25 % to the end of {memory['events']:,} events: {memory['growth_mb']} MB (allowed "
        f"{memory['allowed_growth_mb']} MB); deepest backlog meanwhile {memory['max_backlog']:,} events.",
        WHY,
    )
    verdict = Verdict(
        f"at least {TARGET_RATIO}× the bare consumer's events/s, `/health` p99 at most {TARGET_HEALTH_P99_MS} ms, "
        "memory flat over the stream",
        f"{report['ratio_to_bare']}×, p99 {health['p99']} ms, +{memory['growth_mb']} MB",
        over_budget(report),
    )
    return Section(title, command, METHOD, results, verdict)


async def bare(queue_name: str) -> None:
    """The baseline consumer: prefetch BARE_PREFETCH, an ack per message, nothing else; until SIGTERM."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)

    async def on_message(message: AbstractIncomingMessage) -> None:
        await message.ack()

    connection = await aio_pika.connect_robust(AMQP_URL, client_properties={"connection_name": "bench-bare"})
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=BARE_PREFETCH)
        queue = await channel.declare_queue(queue_name, passive=True)
        await queue.consume(on_message)
        await stopping.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        asyncio.run(bare(sys.argv[2]))
    else:
        problem = over_budget(asyncio.run(main()))
        if problem:
            raise SystemExit(problem)
