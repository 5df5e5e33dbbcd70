"""Consuming the per-tier work queues: one channel and prefetch per tier, one scheduler slot per job.

A job holds its slot until its output is made, not until its outcome is committed: storing the output,
committing the success and acking then overlap the next job's start. So each tier's prefetch is one more
than the slots, and the next delivery is at hand when a slot comes free.
"""

from __future__ import annotations

import asyncio
import functools

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from services.worker.context import WorkerContext
from services.worker.process import handle_job
from services.worker.renewal import renew_if_worn
from services.worker.scheduler import SchedulerClosed, Slot
from shared.broker import Delivery, MessageCallback, deliver, subscribe
from shared.db import DATABASE_DOWN_ERRORS, wait_until_up
from shared.domain import Tier

log = structlog.get_logger()


class TierConsumers:
    """Owns the consuming channels; `stop` stops intake and lets held jobs finish within a grace period."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._consumers: list[tuple[AbstractChannel, AbstractQueue, str]] = []
        self._active: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for tier in Tier:
            channel = await self.ctx.broker.connection.channel()
            await channel.set_qos(prefetch_count=self.ctx.settings.concurrency + 1)
            name = self.ctx.broker.topology.work_queue(tier)
            queue, tag = await subscribe(channel, name, self._callback(tier, name))
            # Strong references: a robust connection only restores what is still alive.
            self._consumers.append((channel, queue, tag))
        log.info("worker.consuming", concurrency=self.ctx.settings.concurrency)

    def _callback(self, tier: Tier, queue_name: str) -> MessageCallback:
        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._run(tier, queue_name, message)

        return on_message

    async def _handle(self, delivery: Delivery, slot: Slot) -> None:
        try:
            await handle_job(self.ctx, delivery, slot)
        except DATABASE_DOWN_ERRORS:
            # Hold the message until PostgreSQL is back, so one outage costs one redelivery
            # against the queue's delivery limit, not one per second.
            await wait_until_up(self.ctx.pool, give_up_after=self.ctx.settings.job_timeout)
            raise

    async def _run(self, tier: Tier, queue_name: str, message: AbstractIncomingMessage) -> None:
        ctx = self.ctx
        if await renew_if_worn(ctx, message, queue_name):
            return
        try:
            slot = await ctx.scheduler.slot(tier)
        except SchedulerClosed:
            await message.nack(requeue=True)
            return
        task = asyncio.current_task()
        assert task is not None
        self._active.add(task)
        try:
            await deliver(ctx.broker, message, functools.partial(self._handle, slot=slot), queue_name)
        finally:
            slot.release()
            self._active.discard(task)

    async def stop(self, grace: float) -> None:
        for _, queue, tag in self._consumers:
            await queue.cancel(tag)
        self.ctx.scheduler.close()
        if self._active:
            log.info("worker.draining", in_flight=len(self._active), grace_s=grace)
            _, pending = await asyncio.wait(set(self._active), timeout=grace)
            for task in pending:
                task.cancel()  # deliver() hands the message back to the broker
            await asyncio.gather(*pending, return_exceptions=True)
        for channel, _, _ in self._consumers:
            await channel.close()
