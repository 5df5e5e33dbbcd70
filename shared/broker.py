"""RabbitMQ access: connecting, publishing with confirms and trace headers, delivering to handlers.

Publishing and delivering each live in exactly one function here: `Broker.publish_raw` and `deliver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError
from opentelemetry import propagate

from shared import broker_nodes
from shared.errors import PoisonMessage
from shared.events import Event, Payload, UndecodableEvent, decode, encode
from shared.messages import OutgoingMessage
from shared.telemetry.tracing import consume_span, publish_span
from shared.topology import Topology, declare, retire

log = structlog.get_logger()

REASON_HEADER = "x-luster-reason"
QUEUE_HEADER = "x-luster-queue"  # the queue the message was taken from, where a re-queue sends it back
DEAD_AT_HEADER = "x-luster-dead-lettered-at"
PERSISTENT = aio_pika.DeliveryMode.PERSISTENT.value
# What "the broker is away" looks like to a publisher, as opposed to a bug: a lost connection (aio-pika's
# AMQPConnectionError is a ConnectionError), a channel the robust connection has not reopened yet, no confirm in time.
BROKER_DOWN_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, ChannelInvalidStateError, TimeoutError)


def trace_headers() -> dict[str, str]:
    """The current W3C trace context, to travel with a message published now or later."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def event_message(
    event: Event, *, exchange: str, routing_key: str, expiration_ms: int | None = None
) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=exchange,
        routing_key=routing_key,
        body=encode(event),
        message_id=str(event.id),
        headers={**trace_headers(), "x-luster-event-type": event.type.value},
        expiration_ms=expiration_ms,
    )


class Broker:
    """One robust connection and one confirming publish channel per process (a new one after a nack)."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractChannel, topology: Topology) -> None:
        self.connection = connection
        self.channel = channel
        self.topology = topology
        self._replacing = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, topology: Topology, *, name: str, startup_timeout: float = 60.0) -> Broker:
        """Connect to `url`: one node's AMQP URL, or a cluster's nodes' separated by commas."""
        connection = await broker_nodes.connect(url.split(","), name=name, give_up_after=startup_timeout)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare(channel, topology)
        await retire(connection, topology)
        return cls(connection, channel, topology)

    async def close(self) -> None:
        await self.connection.close()

    async def publish_raw(self, message: OutgoingMessage) -> None:
        """Publish persistently and wait for the broker's confirm; unroutable messages raise.

        Straight onto the channel's aiormq channel, as aio-pika's Exchange.publish does, without the
        Message and Exchange objects it builds on the way: every job publishes several messages, and
        building those was some 15 % of a publish's CPU (130-141 against 111-123 µs a message, side by side).
        """
        publishing = self.channel
        if publishing.is_closed:  # a robust channel between connections: the relay publishes later
            raise ChannelInvalidStateError(f"{publishing!r} closed")
        channel = await publishing.get_underlay_channel()
        with publish_span(
            message.headers, exchange=message.exchange, routing_key=message.routing_key, message_id=message.message_id
        ) as headers:
            try:
                await channel.basic_publish(
                    message.body,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                    properties=_properties(message, headers),
                    mandatory=True,
                )
            except aiormq.exceptions.DeliveryError as error:
                if isinstance(error.frame, aiormq.spec.Basic.Nack):
                    await self._replace_channel(publishing)
                raise

    async def _replace_channel(self, nacked: AbstractChannel) -> None:
        """Publish on a new channel from now on, once for all the publishes `nacked` refused together.

        RabbitMQ 3.10 can leave a channel refusing every publish after the leader of a quorum queue it
        published to dies while its publishes wait for their confirms: in scenario 17 on a new cluster, the
        api's channel was nacked for five minutes while a new channel on the same node published at once.
        A refused message is published again later anyway (the outbox's relay); a new channel costs a round
        trip, and where the refusal was the queue's own (no majority, a full queue) it is refused there too.
        """
        async with self._replacing:
            if self.channel is not nacked:
                return  # another refused publish has replaced it already
            try:
                self.channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
            except BROKER_DOWN_ERRORS as error:
                log.warning("broker.publish_channel_not_replaced", error=repr(error))  # the next nack tries again
                return
        log.warning("broker.publish_channel_replaced", reason="a publish was nacked")
        with contextlib.suppress(*BROKER_DOWN_ERRORS, aiormq.exceptions.AMQPError):
            # Its own publishes still waiting for confirms fail with it, and are published again later.
            await asyncio.shield(nacked.close())

    async def publish(self, event: Event, *, routing_key: str) -> None:
        await self.publish_raw(event_message(event, exchange=self.topology.events_exchange, routing_key=routing_key))

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str, *, queue: str) -> None:
        """Park a message in the dead-letter queue with the reason, for an operator to inspect or re-queue."""
        headers = {str(k): v for k, v in (message.headers or {}).items()}
        headers.update({REASON_HEADER: reason[:1000], QUEUE_HEADER: queue, DEAD_AT_HEADER: int(time.time())})
        await self.publish_raw(
            OutgoingMessage(
                exchange=self.topology.dead_exchange,
                routing_key=message.routing_key or "",
                body=message.body,
                message_id=message.message_id or "",
                headers=headers,
            )
        )

    async def consumer_count(self, queue: str) -> int:
        """What the broker itself reports, from a passive declare on a channel of its own (a failed
        passive declare closes its channel, and the publishing channel must not be that one)."""
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.consumer_count or 0)
        finally:
            if not channel.is_closed:
                # Shielded: a caller's timeout that cancels Channel.Close mid-call makes aiormq send a
                # second Close, which RabbitMQ answers by closing the whole connection (504 CHANNEL_ERROR).
                await asyncio.shield(channel.close())

    async def is_healthy(self) -> bool:
        return not self.connection.is_closed and not self.channel.is_closed


def _properties(message: OutgoingMessage, headers: dict[str, Any]) -> aiormq.spec.Basic.Properties:
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=PERSISTENT,
        message_id=message.message_id,
        timestamp=datetime.now(UTC),
        headers=headers,
        expiration=str(message.expiration_ms) if message.expiration_ms is not None else None,
    )


@dataclass(frozen=True)
class Delivery:
    """A decoded message as a handler sees it."""

    event: Event
    payload: Payload
    redelivered: bool
    queue: str


class Outcome(StrEnum):
    """What became of a delivered message."""

    ACKED = "acked"
    REQUEUED = "requeued"
    DEAD_LETTERED = "dead_lettered"


Handler = Callable[[Delivery], Awaitable[None]]
MessageCallback = Callable[[AbstractIncomingMessage], Awaitable[None]]


async def deliver(broker: Broker, message: AbstractIncomingMessage, handler: Handler, queue: str) -> None:
    """The one place a message is acked, requeued or dead-lettered; one log line per message."""
    started = time.perf_counter()
    with consume_span(
        message.headers or {}, queue=queue, routing_key=message.routing_key or "", message_id=message.message_id or ""
    ) as span:
        outcome = await _decode_and_handle(broker, message, handler, queue)
        span.set_attribute("luster.outcome", outcome.value)
    # Heartbeats arrive every few seconds from every worker: worth a line only when debugging.
    quiet = message.routing_key == "worker.heartbeat" and outcome is Outcome.ACKED
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.log(
        logging.DEBUG if quiet else logging.INFO,
        "message.handled",
        queue=queue,
        outcome=outcome.value,
        duration_ms=duration_ms,
    )


async def _decode_and_handle(broker: Broker, message: AbstractIncomingMessage, handler: Handler, queue: str) -> Outcome:
    try:
        event, payload = decode(message.body)
    except UndecodableEvent as error:
        await _dead_letter(broker, message, error.reason, queue)
        return Outcome.DEAD_LETTERED
    with structlog.contextvars.bound_contextvars(event_type=event.type.value, job_id=_str(event.job_id)):
        return await _handle(broker, message, handler, Delivery(event, payload, bool(message.redelivered), queue))


async def _handle(broker: Broker, message: AbstractIncomingMessage, handler: Handler, delivery: Delivery) -> Outcome:
    try:
        await handler(delivery)
    except PoisonMessage as poison:
        await _dead_letter(broker, message, poison.message, delivery.queue)
        return Outcome.DEAD_LETTERED
    except asyncio.CancelledError:
        await _requeue(message)
        raise
    except Exception:
        log.exception("delivery.failed", queue=delivery.queue)
        # A short pause keeps a broken dependency from spinning the message; the quorum
        # delivery limit dead-letters it if the failure persists.
        await asyncio.sleep(1.0)
        await _requeue(message)
        return Outcome.REQUEUED
    await message.ack()
    return Outcome.ACKED


async def _dead_letter(broker: Broker, message: AbstractIncomingMessage, reason: str, queue: str) -> None:
    log.warning("message.dead_lettered", reason=reason, queue=queue)
    await broker.dead_letter(message, reason, queue=queue)
    await message.ack()


async def _requeue(message: AbstractIncomingMessage) -> None:
    # Once its channel is gone the broker requeues the message itself, and aio-pika raises on touching it.
    with contextlib.suppress(ChannelInvalidStateError):
        if not message.channel.is_closed:
            await message.nack(requeue=True)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


async def subscribe(
    channel: AbstractChannel, queue_name: str, on_message: MessageCallback
) -> tuple[AbstractQueue, str]:
    """Start consuming with the caller's callback; the caller keeps the queue (strongly), cancels with the tag."""
    # Declared (passively), not get_queue(ensure=False): only a queue the robust channel has registered
    # gets its consumer back after a reconnect.
    queue = await channel.declare_queue(queue_name, passive=True)
    return queue, await queue.consume(on_message)


async def consume(
    broker: Broker, channel: AbstractChannel, queue_name: str, handler: Handler
) -> tuple[AbstractQueue, str]:
    """Start consuming, every message through `deliver` to `handler`."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        await deliver(broker, message, handler, queue_name)

    return await subscribe(channel, queue_name, on_message)
