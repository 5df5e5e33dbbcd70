"""Luster's accept path against the bare handler: `POST /jobs` under wrk, JSON and a 2 MB photo, c=64 and c=2.

`python -m bench.ingest` (part of `make bench`) starts one Luster api (`python -m services.api`, tracing
off: its cost is bench/tracing_overhead.py's to measure) and the baseline, bench/baselines/bare_ingest.py:
one INSERT and one confirmed persistent publish to a quorum queue, and for the photo the file received,
fsynced and renamed first. Luster does all it does for a customer: the key, the rate limits, validation,
the check of the photo, its asset row, the job row with its history and outbox rows in one
statement, and after its answer the confirmed publish and the outbox row marked.

wrk (Debian's package; `make bench` installs it) drives each for `BENCH_INGEST_SECONDS` (10) per workload
and system, each request as the next of `BENCH_INGEST_OWNERS` (64) customers with keys of their own; rounds
alternate the two, and between runs both start again from empty tables, queues and stores, in a database of
the benchmark's own made afresh each run. Each figure is the median of `BENCH_INGEST_ROUNDS` (5). Targets:
Luster's throughput at c=64 ≥ 70 % of the bare handler's, and its p50 at c=2 ≤ 4.5 ms, for both bodies.
The report goes to bench/results/ingest.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg

from bench.harness import (
    AMQP_URL,
    ROOT,
    WORK_DIR,
    CpuReading,
    bench_headers,
    cleanup_broker,
    cpu_seconds,
    forget_jobs,
    fresh_database,
    listing_photo,
    ready,
    start_api,
    stop,
    upload_asset,
    write_report,
)
from bench.harness import DATABASE_URL as BENCH_DATABASE_URL
from bench.markdown import Report, Section, Verdict, paragraphs, table
from shared.topology import Topology

NAME = "ingest"
ROUNDS = int(os.environ.get("BENCH_INGEST_ROUNDS", "5"))  # the machine moves a fifth either way from hour to hour
SECONDS = int(os.environ.get("BENCH_INGEST_SECONDS", "10"))
DATABASE_URL = os.environ.get(
    "BENCH_INGEST_DATABASE_URL", BENCH_DATABASE_URL.rpartition("/")[0] + "/luster_bench_ingest"
)
PORTS = {"luster": 8798, "bare": 8799}
BARE_QUEUE = f"bench-{NAME}-bare"
STORES = {"luster": WORK_DIR / f"{NAME}-uploads", "bare": WORK_DIR / f"{NAME}-bare-store"}
TARGET_RATIO = 0.70
TARGET_P50_MS = 4.5
POOL_SIZE = 10  # Luster's api default (DB_POOL_MAX); the baseline gets as many connections
BOUNDARY = "luster-bench-boundary"
WRK_TIMEOUT_S = 60
# Customers, each with a key of their own: every request goes out as the next one's (their JSON body names
# their own asset). One customer alone would have thousands of jobs in flight after a run, more than any
# plan lets a key hold (JOBS_IN_FLIGHT, 100 by default), and the limit's count would grow with them.
OWNERS = int(os.environ.get("BENCH_INGEST_OWNERS", "64"))
# One line a request (its Authorization, then its body's file), cycled through by every wrk thread.
LUA = """
local requests = {}
local sent = 0

local function slurp(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  return data
end

init = function(args)
  local bodies = {}
  for line in io.lines(os.getenv("BENCH_MANIFEST")) do
    local authorization, path = line:match("^([^\t]*)\t(.+)$")
    bodies[path] = bodies[path] or slurp(path)
    local headers = {["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")}
    if authorization ~= "" then
      headers["Authorization"] = authorization
    end
    requests[#requests + 1] = wrk.format("POST", nil, headers, bodies[path])
  end
end

request = function()
  sent = sent % #requests + 1
  return requests[sent]
end
"""


@dataclass(frozen=True)
class Workload:
    name: str
    body: str  # "json" or "photo"
    connections: int

    @property
    def threads(self) -> int:
        return min(self.connections, 2)


ALL_WORKLOADS = (
    Workload("json_c64", "json", 64),
    Workload("json_c2", "json", 2),
    Workload("photo_c64", "photo", 64),
    Workload("photo_c2", "photo", 2),
)
# A comma-separated selection (say, `json_c64`) while working on one of them; all of them by default.
_CHOSEN = os.environ.get("BENCH_INGEST_WORKLOADS")
WORKLOADS = tuple(w for w in ALL_WORKLOADS if _CHOSEN is None or w.name in _CHOSEN.split(","))


@dataclass(frozen=True)
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float  # the server process's own
    postgresql_us_per_request: float
    rabbitmq_us_per_request: float
    machine_us_per_request: float  # every core's busy time: servers, wrk, the kernel


def _json_body(asset_id: str) -> bytes:
    return f'{{"asset_id": "{asset_id}", "prompt": "bench", "tier": "free"}}'.encode()


def _photo_body() -> bytes:
    parts = [
        *(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in (("prompt", "bench"), ("tier", "premium"))
        ),
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="listing.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode(),
        listing_photo(),
        f"\r\n--{BOUNDARY}--\r\n".encode(),
    ]
    return b"".join(parts)


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    """Requests/s, p50 and p99 in ms, and the number of requests from wrk's --latency report.

    A run with any non-2xx answer or socket error is no measurement: it raises.
    """
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw failures:\n{output}")
    latencies = {int(q): float(v) * _UNIT_MS[unit] for q, v, unit in _LATENCY.findall(output)}
    rate, total = _RATE.search(output), _TOTAL.search(output)
    if rate is None or total is None or set(latencies) != {50, 99}:
        raise RuntimeError(f"wrk's report is not as expected:\n{output}")
    return float(rate.group(1)), latencies[50], latencies[99], int(total.group(1))


@dataclass(frozen=True)
class Request:
    authorization: str
    body: bytes


async def wrk(url: str, workload: Workload, requests: list[Request], content_type: str, seconds: int) -> str:
    script, manifest = WORK_DIR / f"{NAME}.lua", WORK_DIR / f"{NAME}-{workload.body}.requests"
    bodies: dict[bytes, Path] = {}
    lines = []
    for request in requests:  # one file a distinct body: the photo is written once, not once an owner
        if request.body not in bodies:
            bodies[request.body] = WORK_DIR / f"{NAME}-{workload.body}-{len(bodies)}.body"
            bodies[request.body].write_bytes(request.body)
        lines.append(f"{request.authorization}\t{bodies[request.body]}\n")
    manifest.write_text("".join(lines))
    script.write_text(LUA)
    env = {**os.environ, "BENCH_MANIFEST": str(manifest), "BENCH_CONTENT_TYPE": content_type}
    # A slow answer is a latency to report, not a failure: wrk's own timeout (2 s) would drop it uncounted.
    command = [
        *("wrk", f"-t{workload.threads}", f"-c{workload.connections}", f"-d{seconds}s", "--latency"),
        *("--timeout", f"{WRK_TIMEOUT_S}s"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command, "-s", str(script), f"{url}/jobs", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{output.decode()}")
    return output.decode()


@dataclass
class System:
    name: str
    process: subprocess.Popen[bytes]
    authorizations: list[str]  # one an owner

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{PORTS[self.name]}"


async def _requests(system: System, workload: Workload) -> tuple[list[Request], str]:
    """A request an owner: the photo, or JSON naming an asset of the owner's (uploaded now: a run begins
    with empty tables)."""
    if workload.body == "photo":
        body = _photo_body()
        return [Request(a, body) for a in system.authorizations], f"multipart/form-data; boundary={BOUNDARY}"
    if system.name == "bare":
        return [Request(a, _json_body(str(uuid.uuid4()))) for a in system.authorizations], "application/json"
    async with aiohttp.ClientSession() as session:
        requests = [
            Request(a, _json_body(await upload_asset(session, system.url, {"Authorization": a})))
            for a in system.authorizations
        ]
    return requests, "application/json"


async def measure(system: System, workload: Workload, seconds: int = SECONDS) -> Run:
    requests, content_type = await _requests(system, workload)
    before = CpuReading.now(system.process.pid)
    output = await wrk(system.url, workload, requests, content_type, seconds)
    used = CpuReading.now(system.process.pid).since(before)
    await _settled(system)
    rate, p50, p99, total = parse_wrk(output)
    cpu = used.per(total)
    return Run(
        round(rate, 1), round(p50, 2), round(p99, 2), cpu["process"], cpu["postgresql"], cpu["rabbitmq"], cpu["machine"]
    )


async def _settled(system: System) -> None:
    """Until the server has finished what wrk left in flight when it stopped (a photo it was still storing):
    its CPU time stands still for half a second. The next run must not share the machine with this one."""
    async with asyncio.timeout(60):
        while True:
            before = cpu_seconds(system.process.pid)
            await asyncio.sleep(0.5)
            if cpu_seconds(system.process.pid) - before < 0.02:
                return


async def _forget(pool: asyncpg.Pool) -> None:
    """Empty tables, queues and stores: every run starts where the first did."""
    await forget_jobs(pool, "assets", "bench_bare_jobs")
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in (*Topology(f"bench-{NAME}").all_queues(), BARE_QUEUE):
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await (await channel.get_queue(queue, ensure=True)).purge()
    for store in STORES.values():
        await asyncio.to_thread(shutil.rmtree, store, True)
        await asyncio.to_thread(store.mkdir, parents=True, exist_ok=True)


@contextlib.asynccontextmanager
async def systems() -> AsyncIterator[list[System]]:
    environment = {
        "DATABASE_URL": DATABASE_URL,
        "OTEL_SDK_DISABLED": "true",
        "FAIR_SHARE_QUEUED": "0",
        "DB_POOL_MAX": str(POOL_SIZE),
        "UPLOADS_DIR": str(STORES["luster"]),
    }
    bare_environment = {
        "STORE_DIR": str(STORES["bare"]),
        "QUEUE": BARE_QUEUE,
        "DB_POOL_MAX": str(POOL_SIZE),
        "DATABASE_URL": DATABASE_URL,
    }
    luster = start_api(NAME, PORTS["luster"], environment)
    bare = _start_bare(bare_environment)
    keys = [await bench_headers(f"bench-{n}", database_url=DATABASE_URL) for n in range(OWNERS)]
    started = [
        System("luster", luster, [headers["Authorization"] for headers in keys]),
        System("bare", bare, [""] * OWNERS),  # the bare handler reads no key
    ]
    try:
        async with asyncio.timeout(120):
            for system in started:
                await ready(system.url)
        yield started
    finally:
        for system in started:
            stop(system.process, timeout=30)


def _start_bare(extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AMQP_URL": AMQP_URL, "PORT": str(PORTS["bare"]), **extra}
    log = (WORK_DIR / f"{NAME}-bare.log").open("wb")
    command = [sys.executable, "-m", "bench.baselines.bare_ingest"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


async def main() -> dict[str, Any]:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    await fresh_database(DATABASE_URL)
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=2)
    runs: dict[str, dict[str, list[Run]]] = {w.name: {"luster": [], "bare": []} for w in WORKLOADS}
    started = time.monotonic()
    try:
        async with systems() as both:
            for workload in WORKLOADS:  # warm-up: pools filled, statements prepared, pages faulted in
                for system in both:
                    await wrk(system.url, workload, *await _requests(system, workload), 3)
            for number in range(ROUNDS):
                for workload in WORKLOADS:
                    # Alternate who goes first, so a drift in the machine falls on both alike.
                    for system in both if number % 2 == 0 else reversed(both):
                        await _forget(pool)
                        runs[workload.name][system.name].append(await measure(system, workload))
    finally:
        await pool.close()
        await cleanup_broker([NAME])
        await _delete_bare_queue()
    report = _report(runs, time.monotonic() - started)
    write_report(NAME, report)
    return report


async def _delete_bare_queue() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        await (await connection.channel()).queue_delete(BARE_QUEUE)


def _median(runs: list[Run], field: str) -> float:
    values: list[float] = [getattr(run, field) for run in runs]
    return round(statistics.median(values), 2)


def _report(runs: dict[str, dict[str, list[Run]]], elapsed_s: float) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for workload in WORKLOADS:
        measured = runs[workload.name]
        summary = {
            system: {field: _median(results, field) for field in Run.__dataclass_fields__}
            for system, results in measured.items()
        }
        workloads[workload.name] = {
            **summary,
            "ratio": round(summary["luster"]["requests_per_s"] / summary["bare"]["requests_per_s"], 2),
            "rounds": {system: [asdict(run) for run in results] for system, results in measured.items()},
        }
    photo_bytes = len(listing_photo())
    return {
        "benchmark": f"POST /jobs under wrk for {SECONDS} s a run: JSON and a {photo_bytes / 1e6:.1f} MB photo, "
        "c=64 and c=2; one Luster api process against a bare aiohttp handler (1 INSERT + 1 confirmed publish)",
        "cpus": os.cpu_count(),
        "photo_bytes": photo_bytes,
        "elapsed_s": round(elapsed_s),
        "target_ratio_c64": TARGET_RATIO,
        "target_p50_ms_c2": TARGET_P50_MS,
        "workloads": workloads,
    }


def over_budget(report: dict[str, Any]) -> str | None:
    problems = []
    for name, measured in report["workloads"].items():
        if name.endswith("c64") and measured["ratio"] < TARGET_RATIO:
            ratio = measured["ratio"]
            problems.append(f"ingest {name}: {ratio}× the bare handler's requests/s (target {TARGET_RATIO}×)")
        p50 = measured["luster"]["p50_ms"]
        if name.endswith("c2") and p50 > TARGET_P50_MS:
            problems.append(f"ingest {name}: p50 {p50} ms (target {TARGET_P50_MS} ms)")
    return "; ".join(problems) or None


METHOD = """
One Luster api process (`python -m services.api`, tracing off: its cost is the tracing section's) against the
baseline, `bench/baselines/bare_ingest.py`: an aiohttp handler doing one INSERT and one persistent publish to a
quorum queue, confirmed by the broker, and for a photo the file received, written, fsynced and renamed first.
Luster does what it does for a customer: the API key looked up and the request counted against the key's limits
(one statement, shared by the requests under way together), the body validated, the photo's check, its
asset row and file, the job row with its history and outbox rows (one statement, shared the same way; a lone
request's is its own), then, after the answer (the job is accepted once it is committed, and
the outbox makes its announcement certain), the confirmed publish and the outbox row marked published (batched).
The bare handler has no outbox: its message is its only record besides the row, so it waits for the broker's
confirm before it answers. Both do the same work per request; only when the answer goes differs. wrk (Debian's
package; `make bench` installs it) drives each for a fixed time per run: JSON submissions for an uploaded asset,
and multipart submissions with the photo, at 64 and at 2 connections, each request as the next of 64 customers
(`BENCH_INGEST_OWNERS`), each with a key and, for JSON, an asset of their own: one customer alone would hold
thousands of jobs in flight by the end of a run, far past what a key may (`JOBS_IN_FLIGHT`, 100 by default), and
pay for counting them on every request (below). Both servers get the same number of database connections; every
run starts from empty tables, queues and stores in a database of the benchmark's own; the order of the two
alternates from round to round; each figure is the median of the rounds (`BENCH_INGEST_ROUNDS`,
`BENCH_INGEST_SECONDS`). CPU per request is counted four ways over each run: the server process's own, every
PostgreSQL process's and every RabbitMQ process's (by the user they run as), and the whole machine's busy time
(every core, wrk and the kernel included; /proc/stat).
"""

WHY = """
Where Luster's time goes, from py-spy profiles of the api under wrk (2026-12-04): on this machine every round
trip costs a socket write and a wake-up of the order of 100 µs of CPU, and the accept path makes three to
PostgreSQL and one to RabbitMQ where the bare handler makes one and one, then aiohttp's middlewares (tracing,
access log, path and header guards, errors, metrics), pydantic's validation and encoding, and the outbox. What
this work took out: the key lookup and the rate count in one statement; the counters' and the outbox marks'
commits no longer wait for their WAL flush (`synchronous_commit` off for those statements only: a lost count or
mark costs nothing, the job's own commit still waits), which ended the queue of one key's requests on its
rate-window row; the outbox marks batched after the answer; uvloop as every service's event loop; the jobs in
flight counted only up to the key's limit (a key with 5,000 queued made that statement cost PostgreSQL 924 µs
of CPU instead of 208; one customer or 64 measured alike here, 674 and 694 requests/s in one round each).
A profile of the JSON path at c=64 (py-spy, 2026-12-04, 2,574 samples): asyncpg 18 % (two statements),
the confirmed publish 13 %, the seven middlewares and the response about 15 %, pydantic and the job's
dataclasses a few percent; no single place holds the gap.
The photo (2026-12-07): a profile of the photo path at 64 connections (py-spy) found a third of the api's time
in the spool (an upload past its first MiB went to a temporary file: written there, read back for the check,
read again for the store, a thread hop a chunk) and most of the rest in the check, a decode at 1/8 scale,
which still has libjpeg read every block: about 20 ms for this photo. What a decode refuses is a file that
ends early or headers libjpeg cannot use; damaged compressed data it only warns about and fills in. So the
check now reads the JPEG's markers to its end and has libjpeg decode its headers and first rows
(shared/jpeg_structure.py), with the same verdicts as a whole decode on 76 damaged files
(tests/shared/test_jpeg_check.py), and an upload is held in memory within a budget every upload under way
shares (`UPLOAD_MEMORY_BYTES`, 128 MiB; services/api/spool.py), on disk past it. The api's CPU a photo at 64
connections, three rounds side by side with the bare handler each, same hour: 37.6 ms (0.36×; at 2
connections a p50 of 55.8 ms) before; 21.0 ms (0.47×, 38.0 ms) with the markers read and the first 16 KB
of data decoded at 1/8 scale; 17.5 ms (0.54×, 29.8 ms) with only the first rows decoded; 11.8 ms (0.67×,
23.8 ms) held in memory; the bare handler's 8.7 to 10.6 ms.
Waiting, not working (2026-12-07, on a faster machine): with the api's CPU a photo that near the bare handler's,
the photo at 64 connections still stood at 0.70×, and neither the machine's cores (1.5 of 2 busy), nor the
api's threads, nor the disk were full. Timing each step of the request found the wait: the check took 0.46 s
at the median for 1 ms of work. It ran on the default executor, whose six threads also write and fsync the
stored photos (23 ms each at that load), and held one of the two decode slots while it queued there, so every
upload queued behind the storage writes. Checks now run on threads of their own, as many as may decode at once
(services/api/uploads.py, `DecodeLimits`): 0.79× in three rounds side by side (Luster 128 to 136 requests/s,
the bare handler 172 to 186). Then the asset row, a commit of its own before the job's, stopped waiting for
its WAL flush when the job's commit follows (which flushes it: the WAL reaches disk in order): 0.81× (144 to
153 against 169 to 201), the p50 at 2 connections unchanged (18.7 ms, the bare handler's 12.8). `make bench`
half an hour later at the same commit measured 0.67× (rounds 0.61 to 0.78, the bare handler 164 to 207), and a
run of three rounds with both servers given 20 connections instead of 10 in the same hour 0.75×: the
machine's spread, and not the pool. Timing the steps again at 64 connections (medians): from the key's
statement to the handler 97 ms, the body 42, the check 21, the store 48, the asset row 83, the job's statement
96, with 1.5 of the 2 cores busy: what is left is waiting on the database's statements, not work.
Later the same day the upload's sha256 moved from the event loop's thread (hashed chunk by chunk as they
arrived) to a check thread, once the file is all there: side by side, three rounds twice over, 0.75× and 0.81×
before, 0.80× and 0.80× after, inside the machine's spread. What the api's CPU a photo (10.2 to 11.6 ms in
those runs, the bare handler's 7.3 to 8.7) holds beyond the bare handler's is mostly the digest (1.1 ms, which
the bare handler does not take) and the check (1.1 ms, 0.8 of it the structure scan's search for the end
of the compressed data, a regular expression over 2 MB; numpy does it in 0.54 ms, not taken).
The held upload (2026-12-07, on a faster machine, where `make bench` at 87d617d measured 0.62×): a py-spy
profile of the GIL at 64 connections found the event loop's thread holding it 87 % of the time it was held,
13 % of that in writing the chunks into the upload's growing in-memory buffer, which was copied again each
time it grew (64 uploads of 2 MB under way: 2.1 ms a photo, measured alone). The chunks are now kept as they
come and joined once, on the check thread that takes the digest, with the GIL released while it copies
(services/api/spool.py; 1.0 ms). Side by side in one checkout, three rounds a run, runs alternating: before
0.66× and 0.62× (Luster 110 to 116 requests/s, 10.0 to 10.7 ms of the api's CPU a photo), after 0.69× and
0.70× (120 to 128, 9.2 to 10.2 ms). The structure scan by numpy, which releases the GIL where the regular
expression holds it (a thread running it let the main thread run at 95 % of its speed, against 46 %), was
measured in the same runs on top of it and taken back out: 0.63× and 0.64×, 10.3 to 11.1 ms a photo; the two
cores, not the GIL, are what the requests wait for.
Where the machine's cores go (the four CPU columns, first measured 2026-12-06 at 546a032): at 64 connections
both systems keep both cores busy, so requests/s is the machine's CPU divided by its CPU per request, and the
ratio follows the machine column (JSON: Luster 3,055 µs a request, the bare handler 1,072, ratio 0.34×; by
machine CPU 0.35×). Of Luster's 3,055 µs, PostgreSQL took 955 (the key's statement and the job's, where the
bare handler makes one INSERT: 216) and RabbitMQ 451 (job.queued is enqueued on two quorum queues, the tier's
work queue and the monitor's; the bare handler's message on one: 228). 0.7× needs at most 1,072 / 0.7 =
1,531 µs of machine CPU a request, and PostgreSQL and RabbitMQ already take 1,406 of them: even with
PostgreSQL's share halved by batching statements across requests, the api process would have to spend less
than the bare handler's own 559 µs. The target cannot be met by making Luster's code faster while it does
that work per job (the count per key shared by every api instance, the job's history and outbox rows, the
monitor's copy of every event); it needs that work done differently, or a target set against a baseline
that does it too. No server meets the photo's p50 of 4.5 ms at 2 connections here: the bare handler's own is
13 to 21 ms on the machines measured (receiving, writing and fsyncing 2 MB).
Receiving is the small part of it: an aiohttp handler that reads the 2 MB form and keeps nothing answered at
p50 1.8 ms at one connection, the same handler writing the photo as the bare one does at 15 ms (2026-12-07,
wrk, 5 s each); a 2 MB write and fsync alone took 2.4 to 9.1 ms (medians of 40) on this disk within the hour,
by what it had written just before, and an accepted photo must be on disk before its answer.
What each part of the accept path costs the machine, found by taking one away at a time (an experiment of
2026-12-06, not this page's run: the api started with that part replaced, JSON at 64 connections, two runs of
6 s each, medians; machine CPU µs a request): all of it 1,740 (934 requests/s); the key's statement run once
per key instead of per request 1,336; the job's statement (its row, history and outbox rows, its commit)
replaced by a copy of the first 1,079; no publish and no outbox mark 1,198; all three gone 418; the bare
handler in a run of the same hour 901 (1,930 requests/s). Each of the three costs the machine 400 to 660 µs
a request, and the job's statement is the largest: in these runs a queued job entered eight of the `jobs`
table's twelve indexes (listings by owner and by status, queue positions, jobs in flight, fair share, the
Idempotency-Key's), three of `job_events`' and two of `outbox`'s, where the bare handler's row enters one.
Since migration 0012 a job sent without an Idempotency-Key enters seven (docs/scale.md).
Sharing statements across requests (2026-12-06, shared/coalescing.py): requests under way together now share
the key's statement (services/api/keycounter.py) and the job's (shared/intake.py), each still counted and
checked as its own; at most two of each are under way at once, so a lone request waits for nobody and under
load a request waits for at most one statement before its own goes with everyone who arrived meanwhile. JSON at
64 connections, same hour, one run of three rounds each, Luster and bare requests/s (machine µs a request):
before, 635.8 and 1,605.1 (2,542 and 1,032), 0.40×; the key's statement shared, 803.0 and 1,465.8 (1,899 and
1,110), 0.55×; the job's too, 964.2 and 1,671.2 (1,481 and 1,031), 0.58×, with PostgreSQL's share a request
from 812 µs to 301. The job's statement over many rows costs a lone job more than its own (PostgreSQL plans
it for each call: 1,000 µs against 680 measured alone), so a batch of one sends the job's own statement: at
2 connections the p50 went 3.98 ms before, 4.84 with every job through the batch statement, 3.26 with the
lone job's own. A batch of 16 costs PostgreSQL 136 to 246 µs a job. What is left is the api process itself:
929 µs of CPU a request against the bare handler's 548, on a core of its own while PostgreSQL, RabbitMQ and
wrk share the other; its profile (py-spy, 1,782 samples) is flat: asyncpg 12 %, the confirmed publish 9 %,
the middlewares, pydantic and the response the rest.
Where the api process's own CPU goes (2026-12-06, callgrind's instruction count, which machine noise cannot
move: JSON at 8 connections, tracing off, one part of 56181e6 taken away at a time; about 1.95 million
instructions a request, repeat runs within 1.5 %): the seven middlewares 15 % together, of which tracing's
7.7 % (the span OpenTelemetry's API still makes with the SDK switched off, 4 %; suppressing the libraries'
instrumentation for an unsampled request, 1.9 %; reading the caller's context, 1 %), the metrics 3.4 %, the
access log 3.3 % even when its level drops the line, the path and header guards 2.5 %; the answer (the job
as JSON with its headers) 6.7 %. Then taken out: a publish put straight onto aio-pika's aiormq channel
(130 to 141 µs of the publisher's CPU a message against 111 to 123, side by side), the outbox marks of
50 ms in one UPDATE (PostgreSQL 231 against 207 µs a request, same hour), a key's columns named once, the
answer built without validating the job's fields again: together under 2 % of the api's instructions, which
the throughput runs of the same hour cannot see (0.62× and 0.57× before, 0.62× and 0.71× after, while the
bare handler itself moved between 1,594 and 2,238 requests/s). Taken out next (2026-12-06, same method,
1.965 million instructions a request before): with the SDK switched off a service installs no server-span
middleware (its span was OpenTelemetry's no-op one, which carries no trace id: 8.6 %; tracing's own sections
count it since); a JSON body that came in whole with its head is read at once, without a deadline and
chunked reading (3.6 %); the access log no longer times a request whose line its level drops, and the
metrics look their labelled series up in a dict of their own (1 % together): 1.721 million, 12.4 % fewer.
Throughput runs see it dimly: in one run of four rounds at one commit the api's CPU a request moved between
509 and 723 µs and the bare handler's between 373 and 596, and three-round runs of the same hour measured
0.66× before and 0.69× and 0.67× after; the section now takes medians of five rounds. What is left has no
part above a tenth, and each is something an operator or a customer asked for: the metrics and the access
log are the operators' view, the guards refuse what a stranger sends, the key's and the job's statements
and the confirmed publish are the job itself.
Runs inside `make bench` before 2026-12-05 had both servers and wrk on one core (the engine section left the
process pinned, and what it started inherited it): JSON at 64 connections measured 0.34× that way, 0.48× here.
"""


# CPU per request, where it was spent: the server's own process, the two servers it talks to, all of it.
CPU_COLUMNS = {
    "cpu_us_per_request": "server CPU µs/req",
    "postgresql_us_per_request": "PostgreSQL µs/req",
    "rabbitmq_us_per_request": "RabbitMQ µs/req",
    "machine_us_per_request": "machine µs/req",
}


def _round_rows(report: Report) -> list[tuple[str, str]]:
    return [
        (
            name.replace("_c", ", c="),
            ", ".join(
                f"{luster['requests_per_s']:.0f} / {bare['requests_per_s']:.0f}"
                for luster, bare in zip(measured["rounds"]["luster"], measured["rounds"]["bare"], strict=True)
            ),
        )
        for name, measured in report["workloads"].items()
    ]


def section(report: Report | None) -> Section:
    title, command = "Ingest: `POST /jobs` against the bare handler", "python -m bench.ingest"
    if report is None:
        return Section(title, command, METHOD)
    rows = []
    for name, measured in report["workloads"].items():
        luster, bare = measured["luster"], measured["bare"]
        rows.append(
            (
                name.replace("_c", ", c="),
                f"{luster['requests_per_s']:.0f}",
                f"{bare['requests_per_s']:.0f}",
                f"{measured['ratio']:.2f}×",
                f"{luster['p50_ms']} / {bare['p50_ms']}",
                f"{luster['p99_ms']} / {bare['p99_ms']}",
                *(f"{luster[field]:.0f} / {bare[field]:.0f}" for field in CPU_COLUMNS),
            )
        )
    header = ("body, connections", "Luster req/s", "bare req/s", "ratio", "p50 ms", "p99 ms", *CPU_COLUMNS.values())
    results = paragraphs(
        f"This run: {report['benchmark']}; {report['cpus']} CPUs shared with wrk, PostgreSQL and RabbitMQ. "
        "Latency and CPU columns: Luster / bare.",
        table(header, rows),
        "Each round's requests/s, Luster / bare, in the order they ran (the table's figures are the medians of "
        "each column, not one round's):",
        table(("body, connections", "rounds"), _round_rows(report)),
        WHY,
    )
    workloads = report["workloads"]
    measured = ", ".join(
        f"{name} {w['ratio']:.2f}×" if name.endswith("c64") else f"{name} p50 {w['luster']['p50_ms']} ms"
        for name, w in workloads.items()
    )
    verdict = Verdict(
        f"at 64 connections at least {TARGET_RATIO}× the bare handler's requests/s, at 2 a p50 of at most "
        f"{TARGET_P50_MS} ms, for both bodies",
        measured,
        over_budget(report),
    )
    return Section(title, command, METHOD, results, verdict)


if __name__ == "__main__":
    problem = over_budget(asyncio.run(main()))
    if problem:
        raise SystemExit(problem)
