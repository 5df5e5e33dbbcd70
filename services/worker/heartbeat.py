"""Telling the fleet this worker is alive, and when it leaves."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import structlog

from services.worker.context import WorkerContext
from shared import workers
from shared.events import WorkerHeartbeat, WorkerStopped, make_event
from shared.telemetry.tracing import untraced
from shared.telemetry.usage import process_usage

log = structlog.get_logger()
PUBLISH_TIMEOUT_S = 5.0


def _heartbeat(ctx: WorkerContext) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id=ctx.worker_id,
        host=socket.gethostname(),
        started_at=ctx.stats.started_at,
        in_flight=ctx.scheduler.in_use,
        processed=ctx.stats.processed,
        failed=ctx.stats.failed,
        interval_s=ctx.settings.heartbeat_interval,
        process=process_usage(),
        concurrency=ctx.settings.concurrency,
    )


async def beat(ctx: WorkerContext) -> None:
    """Run until cancelled; a missed beat is logged, never fatal."""
    while True:
        event = make_event(_heartbeat(ctx))
        try:
            with untraced():
                await workers.beat(ctx.pool, worker_id=ctx.worker_id, host=socket.gethostname())
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await ctx.broker.publish(event, routing_key=event.type.value)
        except Exception:
            log.warning("heartbeat.failed", exc_info=True)
        await asyncio.sleep(ctx.settings.heartbeat_interval)


async def announce_stop(ctx: WorkerContext) -> None:
    with contextlib.suppress(Exception):
        await workers.stopped(ctx.pool, worker_id=ctx.worker_id)
    stats = ctx.stats
    event = make_event(
        WorkerStopped(
            worker_id=ctx.worker_id, host=socket.gethostname(), processed=stats.processed, failed=stats.failed
        )
    )
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_S):
            await ctx.broker.publish(event, routing_key=event.type.value)
    except Exception:
        log.warning("heartbeat.stop_not_announced", exc_info=True)
