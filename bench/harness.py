"""What the benchmarks share: API processes of their own, a stand-in collector, the requests clients make."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import os
import pwd
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Self

import aio_pika
import aiohttp
import asyncpg
from aiohttp import web
from PIL import Image

from bench import machine
from shared.apikeys import create_key
from shared.db import split_database
from shared.migrate import migrate
from shared.topology import Topology
from tests.harness.procs import descendants, stat_fields
from tests.worker.photos import encode, house

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/luster_bench")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
WORK_DIR = ROOT / "var" / "bench"
UPLOADS = WORK_DIR / "uploads"  # the photos every API start_api starts keeps
RESULTS = ROOT / "bench" / "results"
# Tracing on: every span exported over OTLP/HTTP. Off: the SDK disabled, as if tracing were never set up.
TRACING_OFF = {"OTEL_SDK_DISABLED": "true"}
# Tracing as production runs it: the default sampling there (one trace in ten); the bench's API still
# keeps its photos on local disk, which production refuses unless told the deploy is one machine.
PRODUCTION = {"ENVIRONMENT": "production", "ALLOW_LOCAL_STORAGE": "true"}


def _photo(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 140, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


@functools.cache
def listing_photo() -> bytes:
    """A listing photo as a phone sends it: about 2 MB of JPEG (made once, when a benchmark first asks)."""
    return encode(house(3400, 2267))


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[tuple[str, list[int]]]:
    """A stand-in OTLP/HTTP collector that counts the bytes it is sent."""
    received: list[int] = []

    async def accept(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response(content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 4399)
    await site.start()
    try:
        yield "http://127.0.0.1:4399", received
    finally:
        await runner.cleanup()


async def bench_headers(owner: str = "bench", *, database_url: str = DATABASE_URL) -> dict[str, str]:
    """A key of the benchmark's own, with limits no benchmark reaches (the api refuses anonymous clients)."""
    connection = await asyncpg.connect(database_url)
    try:
        _, token = await create_key(
            connection,
            owner=owner,
            name=owner,
            plan="premium",
            requests_per_minute=10**9,
            jobs_in_flight=10**9,
            bytes_per_day=10**15,
        )
    finally:
        await connection.close()
    return {"Authorization": f"Bearer {token}"}


def start_api(
    name: str, port: int, extra: dict[str, str], *, wrapper: Sequence[str] = (), service: str = "api"
) -> subprocess.Popen[bytes]:
    """An API process of its own (`wrapper` runs it under a tool such as valgrind), or a `service` such as
    the worker, beside it on the same broker prefix and storage."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PORT": str(port),
        "DATABASE_URL": DATABASE_URL,
        "AMQP_URL": AMQP_URL,
        "BROKER_PREFIX": f"bench-{name}",
        "UPLOADS_DIR": str(UPLOADS),
        "OUTPUTS_DIR": str(WORK_DIR / "outputs"),
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log = (WORK_DIR / f"{name}-{service}.log").open("wb")
    command = [*wrapper, sys.executable, "-m", f"services.{service}"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


async def ready(url: str) -> None:
    """Wait until the API answers its health check; the caller bounds the wait."""
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)


async def upload_asset(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> str:
    form = aiohttp.FormData()
    form.add_field("file", _photo(), filename="bench.jpg", content_type="image/jpeg")
    async with session.post(f"{url}/assets", data=form, headers=headers) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["asset"]["id"])


async def submit_json(session: aiohttp.ClientSession, url: str, asset_id: str) -> None:
    """A job for an asset uploaded before: the API's cheapest request, where tracing weighs most."""
    body = {"asset_id": asset_id, "prompt": "bench", "tier": "free"}
    async with session.post(f"{url}/jobs", json=body) as response:
        assert response.status == 202, await response.text()


async def ingest_photo(session: aiohttp.ClientSession, url: str, _: str) -> None:
    """What a client does: the photo and the job in one multipart request."""
    form = aiohttp.FormData()
    form.add_field("file", listing_photo(), filename="listing.jpg", content_type="image/jpeg")
    form.add_field("prompt", "bench")
    form.add_field("tier", "premium")
    async with session.post(f"{url}/jobs", data=form) as response:
        assert response.status == 202, await response.text()


Request = Callable[[aiohttp.ClientSession, str, str], Awaitable[None]]
WORKLOADS: dict[str, Request] = {"submit_json": submit_json, "ingest_photo": ingest_photo}


async def burst(
    session: aiohttp.ClientSession, url: str, asset_id: str, request: Request, *, count: int, concurrency: int
) -> None:
    """`count` requests, `concurrency` clients at a time."""
    pending = iter(range(count))

    async def client() -> None:
        for _ in pending:
            await request(session, url, asset_id)

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def cleanup_broker(names: Sequence[str]) -> None:
    """Remove what the bench APIs declared, queues and exchanges alike."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in names:
            topology = Topology(f"bench-{name}")
            for queue in topology.all_queues():
                await channel.queue_delete(queue)
            for exchange in (topology.events_exchange, topology.dead_exchange):
                await channel.exchange_delete(exchange)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, all its threads, from Linux's /proc: what a busy
    machine's wall clock cannot blur. ProcessLookupError once it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and of every process under it (Dramatiq's workers are its children)."""
    total = 0.0
    for process in (pid, *descendants(pid)):
        with contextlib.suppress(OSError):  # ended since the listing
            total += cpu_seconds(process)
    return total


# The servers a workload talks to besides its own process, by the system user their processes run as.
SERVER_USERS = {"postgresql": "postgres", "rabbitmq": "rabbitmq"}


def servers_cpu_seconds() -> dict[str, float]:
    """CPU time every process of each server in SERVER_USERS has used so far (a backend per connection for
    PostgreSQL): what a request costs the servers beside the api's own process. 0 for a user not here."""
    uids: dict[int, str] = {}
    for server, user in SERVER_USERS.items():
        with contextlib.suppress(KeyError):
            uids[pwd.getpwnam(user).pw_uid] = server
    totals = dict.fromkeys(SERVER_USERS, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            owner = uids.get(entry.stat().st_uid)
            if owner is not None:
                totals[owner] += cpu_seconds(int(entry.name))
        except OSError:  # ended since the listing
            continue
    return totals


def machine_busy_seconds() -> float:
    """CPU time the whole machine has been busy (every core: processes, kernel, interrupts), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(field) for field in Path("/proc/stat").read_text().split(maxsplit=9)[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSeconds:
    """CPU seconds used so far, a field for each place they went (a reading's own fields)."""

    def since(self, earlier: Self) -> Self:
        """What was used between `earlier` and this reading, place by place."""
        used = {field.name: getattr(self, field.name) - getattr(earlier, field.name) for field in fields(self)}
        return replace(self, **used)


@dataclass(frozen=True)
class CpuReading(CpuSeconds):
    """CPU seconds used so far by a process (with its children), by PostgreSQL and RabbitMQ, and by the
    whole machine: where a benchmark's work went, and whether the machine was the limit."""

    process: float
    postgresql: float
    rabbitmq: float
    machine: float

    @classmethod
    def now(cls, pid: int) -> CpuReading:
        servers = servers_cpu_seconds()
        return cls(tree_cpu_seconds(pid), servers["postgresql"], servers["rabbitmq"], machine_busy_seconds())

    def per(self, count: int) -> dict[str, float]:
        """Microseconds per unit of work (a request, a job), by where they were spent."""
        return {field: round(seconds / count * 1e6) for field, seconds in asdict(self).items()}


def stop(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def fresh_database(url: str) -> None:
    """A benchmark's own database, new each run: no other benchmark's leftovers (queued jobs, outbox rows
    for exchanges long gone) for a sweeper, a relay or the monitor to spend time on."""
    maintenance, name = split_database(url)
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
    await asyncio.to_thread(migrate, url)


TRUNCATE_ATTEMPTS = 50


async def forget_jobs(pool: asyncpg.Pool, *tables: str) -> None:
    """No job in flight, as at the first run: an api counts its key's jobs in flight (up to the key's limit,
    and benchmark keys have none) and, with `assets`, its bytes stored today on every limited request.
    With `assets` their photos go too: the tracing section alone stores some 5,000 photos of 2 MB a run,
    which a machine running `make bench` now and then would keep until its disk was full.

    Emptied, not deleted from: the CI machines run PostgreSQL with autovacuum off, so a DELETE leaves every
    row it removes (and its index entries) for the next run to step over, and each run would be slower than
    the last. Then a checkpoint, so that none falls inside a run and every run writes its pages' first
    images after one, alike.
    """
    statement = f"TRUNCATE {', '.join(('jobs', 'outbox', 'rate_windows', *tables))} CASCADE"
    for attempt in range(1, TRUNCATE_ATTEMPTS + 1):
        try:
            async with pool.acquire() as connection, connection.transaction():
                # Give up soon rather than queue for the tables while holding some of them: an api's
                # statement (its outbox relay, its published marks) that meets them in another order would
                # wait on this one as it waits on it, a deadlock PostgreSQL only breaks after a second.
                await connection.execute("SET LOCAL lock_timeout = '200ms'")
                await connection.execute(statement)
            await pool.execute("CHECKPOINT")
            if "assets" in tables:
                await asyncio.to_thread(_empty, UPLOADS)
            return
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
            if attempt == TRUNCATE_ATTEMPTS:
                raise
            await asyncio.sleep(random.uniform(0.05, 0.3))  # out of step with whatever held the tables


def _empty(directory: Path) -> None:
    """Every file in `directory`, which stays: the APIs that write there are still running."""
    if directory.is_dir():
        for entry in directory.iterdir():
            if not entry.is_dir():
                entry.unlink(missing_ok=True)


def save_report(name: str, report: dict[str, Any]) -> None:
    """Everything to bench/results/<name>.json, stamped with when and at which commit it was measured:
    bench.report renders docs/benchmarks.md from these files."""
    RESULTS.mkdir(exist_ok=True)
    stamped = {**report, "measured": {"at": machine.now(), "commit": machine.commit()}}
    (RESULTS / f"{name}.json").write_text(json.dumps(stamped, indent=2))


def write_report(name: str, report: dict[str, Any]) -> None:
    """The report saved (`save_report`); the summary, without per-round detail, to stdout."""
    save_report(name, report)
    summary = {
        key: {k: v for k, v in value.items() if k != "rounds"} if isinstance(value, dict) else value
        for key, value in report.items()
    }
    print(json.dumps(summary, indent=2))
