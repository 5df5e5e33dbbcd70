"""Consuming every event from the monitor's own bounded queue into the aggregator and the worker registry."""

from __future__ import annotations

import asyncio
import time

import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue
from aio_pika.exceptions import AMQPError

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.aggregation.steps import from_event
from shared.broker import Broker, Delivery, consume

log = structlog.get_logger()
STOP_TIMEOUT_S = 5.0
PREFETCH = 200  # folding an event into memory is quick; a deep prefetch keeps up with bursts


class EventConsumer:
    def __init__(self, broker: Broker, aggregator: Aggregator, workers: WorkerRegistry) -> None:
        self.broker = broker
        self.aggregator = aggregator
        self.workers = workers
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None  # held strongly: a robust connection restores only live consumers
        self._tag: str | None = None

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=PREFETCH)
        self._queue, self._tag = await consume(
            self.broker, self._channel, self.broker.topology.monitor_queue, self.handle
        )

    async def handle(self, delivery: Delivery) -> None:
        now = time.time()
        if self.workers.apply(delivery.event, delivery.payload, now):
            return
        step = from_event(delivery.event, delivery.payload)
        if step is not None:
            self.aggregator.record(step, now)

    async def stop(self) -> None:
        """Best effort: the connection closes right after, which ends the consumer anyway."""
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                if self._queue is not None and self._tag is not None:
                    await self._queue.cancel(self._tag)
                if self._channel is not None and not self._channel.is_closed:
                    await self._channel.close()
        except (AMQPError, TimeoutError, RuntimeError) as error:
            log.warning("consumer.stop_failed", error=repr(error))
