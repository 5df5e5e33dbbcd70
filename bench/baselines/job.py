"""One job as a baseline worker runs it: exactly the work Luster's worker does for a job on the no-op engine.

The same two state changes (`shared.jobstate.start` and `succeed`, each with its job_events row and an
outbox row for its event, in one transaction), the same storage reads and writes, the same engine, and the
same events (`make_event` envelopes, published to the events exchange the monitor reads, each awaiting the
broker's confirm) through Luster's own outbox and broker code. Only the framework around it differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from services.worker.engines import EnhanceRequest
from services.worker.engines.noop import NoopEngine
from services.worker.settings import WorkerSettings
from shared import jobstate, outbox
from shared.assets import get_asset
from shared.broker import Broker, event_message
from shared.db import create_pool
from shared.events import JobStarted, JobSucceeded, Payload, make_event
from shared.jobs import Job
from shared.messages import OutgoingMessage
from shared.storage import Store, open_stores
from shared.topology import Topology

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What a baseline worker process holds for its jobs, as Luster's worker context does."""

    settings: WorkerSettings
    pool: asyncpg.Pool
    broker: Broker
    uploads: Store
    outputs: Store
    engine: NoopEngine


@contextlib.asynccontextmanager
async def open_resources(settings: WorkerSettings, *, name: str) -> AsyncIterator[Resources]:
    """The pool, the confirming broker channel and the stores, sized as the worker's own settings say."""
    dsn, url = str(settings.database_url.get_secret_value()), str(settings.amqp_url.get_secret_value())
    pool = await create_pool(dsn, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    broker = await Broker.connect(url, Topology(settings.broker_prefix), name=name)
    try:
        async with open_stores(settings) as stores:
            engine = NoopEngine(max_pixels=settings.max_image_pixels)
            yield Resources(settings, pool, broker, stores.uploads, stores.outputs, engine)
    finally:
        await broker.close()
        await outbox.settle(pool)
        await pool.close()


def _announce(resources: Resources, job: Job, payload: Payload) -> OutgoingMessage:
    event = make_event(payload, job_id=job.id)
    return event_message(event, exchange=resources.broker.topology.events_exchange, routing_key=event.type.value)


async def run_job(resources: Resources, job_id: uuid.UUID) -> None:
    """queued → processing, the photo re-encoded and stored, processing → succeeded; each event confirmed."""
    worker_id = resources.settings.worker_id
    async with outbox.transaction(resources.pool, resources.broker) as box:
        job = await jobstate.start(box.connection, job_id, worker_id=worker_id)
        if job is not None:
            started = JobStarted(worker_id=worker_id, tier=job.tier, attempt=job.attempts, queued_at=job.created_at)
            await box.stage(_announce(resources, job, started))
    if job is None:
        return  # already done: a redelivery, acknowledged without work as Luster's worker does
    loop = asyncio.get_running_loop()
    began = loop.time()
    asset = await get_asset(resources.pool, job.asset_id)
    assert asset is not None
    photo = await resources.uploads.get(asset.storage_key)
    request = EnhanceRequest(image=photo, prompt=job.prompt, tier=job.tier, style=job.style)
    result = await resources.engine.enhance(request)
    key = f"{job.id}.jpg"
    await resources.outputs.put(key, result.image)
    async with outbox.transaction(resources.pool, resources.broker) as box:
        done = await jobstate.succeed(
            box.connection,
            job.id,
            output_key=key,
            content_type=result.content_type,
            cost=result.cost,
            engine=result.engine,
            worker_id=worker_id,
        )
        if done is not None:
            succeeded = JobSucceeded(
                worker_id=worker_id,
                tier=done.tier,
                attempt=done.attempts,
                output_key=key,
                width=result.width,
                height=result.height,
                cost=result.cost,
                engine=result.engine,
                processing_ms=round((loop.time() - began) * 1000, 2),
                queued_at=done.created_at,
            )
            await box.stage(_announce(resources, done, succeeded))


class ProcessResources:
    """The process's resources, opened by its first job on the event loop that runs every job."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stack = contextlib.AsyncExitStack()
        self._resources: Resources | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Resources:
        if self._lock is None:  # made on the loop it serves (first caller; the loop is single-threaded)
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._resources is None:
                self._resources = await self._stack.enter_async_context(
                    open_resources(WorkerSettings(), name=self._name)
                )
        return self._resources

    async def close(self) -> None:
        await self._stack.aclose()


class LoopThread:
    """One event loop in a thread of its own, which worker threads hand coroutines to and wait on (what
    Dramatiq's AsyncIO middleware does, for Celery)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="baseline-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()
