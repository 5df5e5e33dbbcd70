"""Consuming every event from the monitor's own bounded queue into the aggregator and the worker registry.

Every event of the system passes through here, so the common case is kept to what it must be: decode,
fold into memory, acknowledge in bulk; a consume span only where the job's trace is sampled, no log line.
Folding is pure and synchronous, so each event is counted before its message is acknowledged, and a
crash can only redeliver events (which count once). Anything out of the ordinary (a body that does not
decode, a fold that raises) goes through `shared.broker.deliver`, the one place a message is
dead-lettered or requeued, with its log line and span.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import propagate, trace

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.apis import ApiWatch
from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.aggregation.steps import from_event
from shared.broker import Broker, Delivery, deliver, subscribe
from shared.events import decode
from shared.telemetry.tracing import consume_span

log = structlog.get_logger()
STOP_TIMEOUT_S = 5.0
# Deep enough to keep up with bursts (the broker never waits on us), shallow enough that the events of one
# read, folded back to back at about 0.1 ms each with their decoding, hold /health up a few ms at most.
PREFETCH = 100
# One acknowledgement per this many events, or after ACK_DELAY_S when fewer came: well inside the prefetch
# window, so the broker never waits on us; a crash redelivers at most these, and they count once.
ACK_EVERY = PREFETCH // 4
ACK_DELAY_S = 0.05


def _sampled(message: AbstractIncomingMessage) -> bool:
    """Whether the job's trace is kept. Only then is the consume span worth its cost: the span of a trace
    the api did not sample is never exported (the sampler follows the parent), so skipping it changes nothing."""
    headers = {k: v for k, v in (message.headers or {}).items() if isinstance(v, str)}
    context = trace.get_current_span(propagate.extract(headers)).get_span_context()
    return context.is_valid and context.trace_flags.sampled


class EventConsumer:
    def __init__(
        self, broker: Broker, aggregator: Aggregator, workers: WorkerRegistry, apis: ApiWatch | None = None
    ) -> None:
        self.broker = broker
        self.aggregator = aggregator
        self.workers = workers
        self.apis = apis if apis is not None else ApiWatch.create(workers.stale_factor)
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None  # held strongly: a robust connection restores only live consumers
        self._tag: str | None = None
        self._last: AbstractIncomingMessage | None = None  # the newest folded message not yet acknowledged
        self._folded = 0  # messages folded since the last acknowledgement
        self._timer: asyncio.TimerHandle | None = None
        self._acks: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references
        self._unusual = 0  # messages in `deliver` now: no acknowledgement in bulk may cover them

    async def start(self) -> None:
        self._channel = await self.broker.connection.channel()
        await self._channel.set_qos(prefetch_count=PREFETCH)
        queue = self.broker.topology.monitor_queue
        self._queue, self._tag = await subscribe(self._channel, queue, self.on_message)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            if _sampled(message):
                with consume_span(
                    message.headers or {},
                    queue=self.broker.topology.monitor_queue,
                    routing_key=message.routing_key or "",
                    message_id=message.message_id or "",
                ):
                    self._fold(message)
            else:
                self._fold(message)
        except Exception:  # UndecodableEvent, or a bug in folding: `deliver` logs it and decides
            await self._unusual_message(message)
            return
        if self._unusual:
            await self._ack(message, multiple=False)
            return
        self._last, self._folded = message, self._folded + 1
        if self._folded >= ACK_EVERY:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(ACK_DELAY_S, self._flush)

    def _fold(self, message: AbstractIncomingMessage) -> None:
        event, payload = decode(message.body)
        self.handle(Delivery(event, payload, bool(message.redelivered), self.broker.topology.monitor_queue))

    def handle(self, delivery: Delivery) -> None:
        now = time.time()
        if self.workers.apply(delivery.event, delivery.payload, now):
            return
        if self.apis.apply(delivery.event, delivery.payload, now):
            return
        step = from_event(delivery.event, delivery.payload)
        if step is not None:
            self.aggregator.record(step, now)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        last, self._last, self._folded = self._last, None, 0
        if last is not None:
            task = asyncio.create_task(self._ack(last, multiple=True))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)

    async def _ack(self, message: AbstractIncomingMessage, *, multiple: bool) -> None:
        # Once its channel is gone the broker redelivers the message itself; it then counts once.
        try:
            await message.ack(multiple=multiple)
        except ChannelInvalidStateError:
            log.info("consumer.ack_lost", multiple=multiple)

    async def _unusual_message(self, message: AbstractIncomingMessage) -> None:
        """Settle what was folded before, then let `deliver` decide this one (dead letter, requeue)."""
        self._unusual += 1
        try:
            last, self._last, self._folded = self._last, None, 0
            if last is not None:
                await self._ack(last, multiple=True)

            async def fold(delivery: Delivery) -> None:
                self.handle(delivery)

            await deliver(self.broker, message, fold, self.broker.topology.monitor_queue)
        finally:
            self._unusual -= 1

    async def stop(self) -> None:
        """Best effort: the connection closes right after, which ends the consumer anyway."""
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                if self._queue is not None and self._tag is not None:
                    await self._queue.cancel(self._tag)
                self._flush()  # what was folded is acknowledged, not redelivered to the next monitor
                await asyncio.gather(*self._acks)
                if self._channel is not None and not self._channel.is_closed:
                    await self._channel.close()
        except (AMQPError, TimeoutError, RuntimeError) as error:
            log.warning("consumer.stop_failed", error=repr(error))
