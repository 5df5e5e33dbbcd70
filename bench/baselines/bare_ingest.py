"""The ingest baseline: the least an aiohttp handler can do and still accept a job durably.

`POST /jobs` with a JSON body: one INSERT, then one persistent publish to a quorum queue, confirmed by
the broker, then 202. With a multipart body, first the photo: received, written beside its final name,
fsynced and renamed (what a store that may not lose an accepted photo does), then the same INSERT and
publish. No authentication, limits, validation, idempotency, photo check, outbox or history: that is
Luster's cost, which bench/ingest.py measures against this.

`python -m bench.baselines.bare_ingest`, configured by the environment: PORT, DATABASE_URL, AMQP_URL,
QUEUE, STORE_DIR, DB_POOL_MAX (Luster's api pool size, so both have as many connections).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
from aiohttp import BodyPartReader, web

POOL = web.AppKey("pool", asyncpg.Pool)
CHANNEL = web.AppKey("channel", aio_pika.abc.AbstractChannel)
STORE = Path(os.environ.get("STORE_DIR", "var/bench/bare-store"))
QUEUE = os.environ.get("QUEUE", "bench-bare-ingest")
TABLE = "bench_bare_jobs"


def _store(data: bytes) -> str:
    key = f"{uuid.uuid4()}.jpg"
    descriptor, temporary = tempfile.mkstemp(dir=STORE, prefix=f".{key}.", suffix=".tmp")
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, STORE / key)
    return key


async def _fields(request: web.Request) -> tuple[dict[str, str], str | None]:
    if request.content_type != "multipart/form-data":
        return await request.json(), None
    fields: dict[str, str] = {}
    photo = b""
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            photo = bytes(await part.read())
        elif part.name is not None:
            fields[part.name] = await part.text()
    return fields, await asyncio.to_thread(_store, photo)


async def create_job(request: web.Request) -> web.Response:
    fields, stored = await _fields(request)
    job_id = uuid.uuid4()
    await request.app[POOL].execute(
        f"INSERT INTO {TABLE} (id, asset, prompt, tier) VALUES ($1, $2, $3, $4)",
        job_id,
        stored or fields.get("asset_id"),
        fields.get("prompt"),
        fields.get("tier"),
    )
    body = json.dumps({"job_id": str(job_id), **fields}).encode()
    message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(job_id))
    await request.app[CHANNEL].default_exchange.publish(message, routing_key=QUEUE)
    return web.json_response({"job": {"id": str(job_id), "status": "queued"}}, status=202)


async def resources(app: web.Application) -> AsyncIterator[None]:
    await asyncio.to_thread(STORE.mkdir, parents=True, exist_ok=True)
    pool_max = int(os.environ.get("DB_POOL_MAX", "10"))
    app[POOL] = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=pool_max)
    await app[POOL].execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id uuid PRIMARY KEY, asset text, prompt text, tier text,"
        " created_at timestamptz NOT NULL DEFAULT now())"
    )
    connection = await aio_pika.connect_robust(os.environ["AMQP_URL"])
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    app[CHANNEL] = channel
    yield
    await connection.close()
    await app[POOL].close()


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.cleanup_ctx.append(resources)
    app.router.add_post("/jobs", create_job)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), access_log=None, print=None)


if __name__ == "__main__":
    main()
