"""The worker's lifetime: build the context, consume and beat until told to stop, then drain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

from services.worker import heartbeat, metrics, sweeper
from services.worker.consumer import TierConsumers
from services.worker.context import WorkerContext, WorkerStats
from services.worker.engines.factory import create_engine
from services.worker.engines.pool import start_pool
from services.worker.faults import NO_FAULTS, Faults
from services.worker.scheduler import TierScheduler
from services.worker.settings import WorkerSettings
from services.worker.webhooks.consumer import WebhookConsumer
from shared import outbox, watchdog
from shared.broker import Broker
from shared.db import create_pool
from shared.domain import Tier
from shared.groupcommit import GroupCommit
from shared.storage import open_stores
from shared.topology import Topology

log = structlog.get_logger()


@contextlib.asynccontextmanager
async def worker_context(settings: WorkerSettings, faults: Faults = NO_FAULTS) -> AsyncIterator[WorkerContext]:
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(
            str(settings.database_url.get_secret_value()),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            startup_timeout=settings.startup_timeout,
        )
        stack.push_async_callback(pool.close)
        stack.push_async_callback(outbox.settle, pool)
        broker = await Broker.connect(
            str(settings.amqp_url.get_secret_value()),
            Topology(settings.broker_prefix),
            name=f"luster-worker:{settings.worker_id}",
            startup_timeout=settings.startup_timeout,
        )
        stack.push_async_callback(broker.close)
        commits = GroupCommit(pool, broker, largest=settings.concurrency)
        stack.push_async_callback(commits.settle)
        executor = await start_pool(settings.concurrency, within=settings.startup_timeout)
        stack.callback(executor.shutdown, wait=True, cancel_futures=True)
        stores = await stack.enter_async_context(open_stores(settings))
        engine = create_engine(settings, executor, faults, pool)
        stack.push_async_callback(engine.aclose)
        measured = metrics.WorkerMetrics.create(settings.app_version)
        await stack.enter_async_context(metrics.serving(settings, measured))
        yield WorkerContext(
            settings=settings,
            pool=pool,
            broker=broker,
            commits=commits,
            engine=engine,
            executor=executor,
            uploads=stores.uploads,
            outputs=stores.outputs,
            scheduler=TierScheduler(settings.concurrency, premium_share=settings.premium_share),
            stats=WorkerStats(),
            metrics=measured,
            faults=faults,
        )


def _watch(ctx: WorkerContext) -> asyncio.Task[None]:
    queues = [ctx.broker.topology.work_queue(tier) for tier in Tier]
    settings = ctx.settings
    return asyncio.create_task(
        watchdog.watch(
            ctx.broker, queues, interval_s=settings.watchdog_interval, give_up_after=settings.broker_give_up_after
        )
    )


async def _until_stopped_or_done(stop: asyncio.Event, task: asyncio.Future[Any]) -> bool:
    """Wait for `stop` or for `task`, whichever comes first; True when `task` is done."""
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({stopping, task}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    return task.done()


async def _start_unless_stopped(
    stack: contextlib.AsyncExitStack, settings: WorkerSettings, faults: Faults, stop: asyncio.Event
) -> WorkerContext | None:
    """The worker's resources, or None when `stop` is set first (say, while PostgreSQL is not up yet)."""
    starting = asyncio.ensure_future(stack.enter_async_context(worker_context(settings, faults)))
    if await _until_stopped_or_done(stop, starting):
        return starting.result()
    starting.cancel()  # worker_context closes whatever it had opened
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return None


async def run(settings: WorkerSettings, stop: asyncio.Event, faults: Faults = NO_FAULTS) -> None:
    """Work until `stop` is set; in-flight jobs get `shutdown_grace` seconds to finish.

    Raises DependencyUnavailable when a dependency does not answer at start-up, or when the broker lost
    this worker's consumers for good, so that `__main__` exits non-zero and the platform restarts it.
    """
    async with contextlib.AsyncExitStack() as stack:
        ctx = await _start_unless_stopped(stack, settings, faults, stop)
        if ctx is None:
            log.info("worker.stopped_while_starting")
            return
        await _work(ctx, stop)


async def _work(ctx: WorkerContext, stop: asyncio.Event) -> None:
    settings = ctx.settings
    consumers = TierConsumers(ctx)
    await consumers.start()
    webhooks = WebhookConsumer(ctx)
    await webhooks.start()
    watching = _watch(ctx)
    chores = [
        asyncio.create_task(heartbeat.beat(ctx)),
        asyncio.create_task(sweeper.sweep(ctx, settings.sweep_interval)),
    ]
    await _until_stopped_or_done(stop, watching)  # the watchdog is done only when it gave up
    lost = watching.exception() if watching.done() else None
    # From here consumers go away on purpose: the watchdog would read the drain as an outage.
    watching.cancel()
    log.info("worker.stopping")
    await consumers.stop(settings.shutdown_grace)
    await webhooks.stop(settings.webhook_timeout)
    for task in chores:
        task.cancel()
    await asyncio.gather(*chores, watching, return_exceptions=True)
    if lost is not None:
        raise lost
    await heartbeat.announce_stop(ctx)
    log.info("worker.stopped", processed=ctx.stats.processed, failed=ctx.stats.failed)
