"""API throughput with tracing on (100 % sampled, exported over OTLP) against tracing off.

Two workloads: `ingest_photo`, what clients do (the photo and the job in one multipart request), which
carries the 15 % budget; and `submit_json`, a job for an already uploaded asset, the cheapest request
there is and so the worst case for tracing's relative cost, reported alongside.

Both API processes run at once against the same PostgreSQL and RabbitMQ; rounds alternate
between them so machine noise falls on both alike, and the report is the median of the ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
from aiohttp import web
from PIL import Image

from shared.migrate import migrate
from shared.topology import Topology

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
REQUESTS_PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "300"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "16"))
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/luster_bench")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
BUDGET_PERCENT = 15.0


def _photo(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 140, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


# A listing photo as phones send them is megabytes; this keeps the run short and still decodes a real image.
LISTING_PHOTO = _photo(1600, 1200)


@contextlib.asynccontextmanager
async def _collector() -> AsyncIterator[tuple[str, list[int]]]:
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


def _start_api(name: str, port: int, extra: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PORT": str(port),
        "DATABASE_URL": DATABASE_URL,
        "AMQP_URL": AMQP_URL,
        "BROKER_PREFIX": f"bench-{name}",
        "UPLOADS_DIR": str(tmp / "uploads"),
        "OUTPUTS_DIR": str(tmp / "outputs"),
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "services.api"], cwd=ROOT, env=env, stdout=log, stderr=log)


async def _ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} never became healthy")


async def _asset(session: aiohttp.ClientSession, url: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", _photo(), filename="bench.jpg", content_type="image/jpeg")
    async with session.post(f"{url}/assets", data=form) as response:
        return str((await response.json())["asset"]["id"])


async def _submit_json(session: aiohttp.ClientSession, url: str, asset_id: str) -> None:
    """A job for an asset uploaded before: the API's cheapest request, where tracing weighs most."""
    body = {"asset_id": asset_id, "prompt": "bench", "tier": "free"}
    async with session.post(f"{url}/jobs", json=body) as response:
        assert response.status == 202, await response.text()


async def _ingest_photo(session: aiohttp.ClientSession, url: str, _: str) -> None:
    """What a client does: the photo and the job in one multipart request."""
    form = aiohttp.FormData()
    form.add_field("file", LISTING_PHOTO, filename="listing.jpg", content_type="image/jpeg")
    form.add_field("prompt", "bench")
    form.add_field("tier", "premium")
    async with session.post(f"{url}/jobs", data=form) as response:
        assert response.status == 202, await response.text()


Request = Callable[[aiohttp.ClientSession, str, str], Awaitable[None]]
WORKLOADS: dict[str, Request] = {"submit_json": _submit_json, "ingest_photo": _ingest_photo}


async def _round(session: aiohttp.ClientSession, url: str, asset_id: str, request: Request) -> float:
    """Requests per second for one burst."""
    pending = iter(range(REQUESTS_PER_ROUND))

    async def client() -> None:
        for _ in pending:
            await request(session, url, asset_id)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return REQUESTS_PER_ROUND / (time.perf_counter() - started)


async def _cleanup_broker() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in ("on", "off"):
            topology = Topology(f"bench-{name}")
            for queue in topology.all_queues():
                await channel.queue_delete(queue)
            for exchange in (topology.events_exchange, topology.dead_exchange):
                await channel.exchange_delete(exchange)


async def _measure(urls: dict[str, str], request: Request) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY * 2)) as session:
        assets = {name: await _asset(session, url) for name, url in urls.items()}
        for name, url in urls.items():  # warm both up: pools, connections, caches
            await _round(session, url, assets[name], request)
        for index in range(ROUNDS):
            order = list(urls) if index % 2 == 0 else list(reversed(urls))
            for name in order:
                rates[name].append(await _round(session, urls[name], assets[name], request))
    return rates


def _summary(rates: dict[str, list[float]]) -> dict[str, Any]:
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    return {
        "median_rps_on": round(statistics.median(rates["on"]), 1),
        "median_rps_off": round(statistics.median(rates["off"]), 1),
        "median_ratio_on_over_off": round(statistics.median(ratios), 3),
        "throughput_drop_percent": round((1 - statistics.median(ratios)) * 100, 1),
        "rates": rates,
    }


async def main() -> None:
    await asyncio.to_thread(migrate, DATABASE_URL)
    tmp = ROOT / "var" / "bench"
    tmp.mkdir(parents=True, exist_ok=True)
    async with _collector() as (collector_url, received):
        processes = {
            "on": _start_api("on", 8790, {"OTLP_ENDPOINT": collector_url}, tmp),
            "off": _start_api("off", 8791, {"OTEL_SDK_DISABLED": "true"}, tmp),
        }
        urls = {"on": "http://127.0.0.1:8790", "off": "http://127.0.0.1:8791"}
        try:
            for url in urls.values():
                await _ready(url)
            results = {name: _summary(await _measure(urls, request)) for name, request in WORKLOADS.items()}
        finally:
            for process in processes.values():
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            await _cleanup_broker()
    report = {
        "benchmark": "API throughput with tracing on (100 % sampled, exported over OTLP/HTTP) vs off",
        "rounds": ROUNDS,
        "requests_per_round": REQUESTS_PER_ROUND,
        "concurrency": CONCURRENCY,
        "otlp_exports_received": len(received),
        **results,
    }
    printable = {
        k: ({kk: vv for kk, vv in v.items() if kk != "rates"} if isinstance(v, dict) else v) for k, v in report.items()
    }
    print(json.dumps(printable, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "tracing_overhead.json").write_text(json.dumps(report, indent=2))
    drop = results["ingest_photo"]["throughput_drop_percent"]
    if drop > BUDGET_PERCENT:
        sys.exit(f"tracing costs {drop} % of photo ingest throughput (budget: {BUDGET_PERCENT} %)")
