"""Broker.publish_raw: what a consumer receives, what the broker refuses, and the channel after a refusal."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import aiormq
import pytest
from aio_pika.exceptions import DeliveryError, PublishError
from structlog.testing import capture_logs

from shared.broker import Broker
from shared.messages import OutgoingMessage

pytestmark = pytest.mark.integration


async def test_a_published_message_arrives_persistent_with_its_properties(broker: Broker) -> None:
    channel = await broker.connection.channel()
    try:
        queue = await channel.declare_queue(exclusive=True)
        message_id = str(uuid.uuid4())
        before = int(time.time())
        await broker.publish_raw(
            OutgoingMessage(
                exchange="",
                routing_key=queue.name,
                body=b'{"hello": "world"}',
                message_id=message_id,
                headers={"x-luster-event-type": "job.queued", "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
                expiration_ms=60_000,
            )
        )
        received = await queue.get(timeout=10)
        await received.ack()
    finally:
        await channel.close()
    assert received.body == b'{"hello": "world"}'
    assert received.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert received.content_type == "application/json"
    assert received.message_id == message_id
    assert received.headers["x-luster-event-type"] == "job.queued"
    assert received.expiration == 60
    assert received.timestamp is not None and before - 1 <= received.timestamp.timestamp() <= time.time() + 1


async def test_a_message_no_queue_takes_is_refused(broker: Broker) -> None:
    unroutable = OutgoingMessage(
        exchange="",  # the events exchange's monitor binding takes every event; a queue that isn't, none
        routing_key=f"no-such-queue-{uuid.uuid4()}",
        body=b"{}",
        message_id=str(uuid.uuid4()),
        headers={},
    )
    with pytest.raises(PublishError):
        await broker.publish_raw(unroutable)


def _to(queue: str) -> OutgoingMessage:
    return OutgoingMessage(exchange="", routing_key=queue, body=b"{}", message_id=str(uuid.uuid4()), headers={})


async def _full_queue(broker: Broker) -> tuple[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractQueue]:
    """A queue that holds one message and refuses (nacks) the next: a nack from the broker itself."""
    channel = await broker.connection.channel()
    queue = await channel.declare_queue(exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    await broker.publish_raw(_to(queue.name))
    return channel, queue


async def test_a_nacked_publish_raises_and_the_next_publish_goes_on_a_new_channel(broker: Broker) -> None:
    side, queue = await _full_queue(broker)
    nacked = broker.channel
    try:
        with pytest.raises(DeliveryError) as refused:
            await broker.publish_raw(_to(queue.name))
        assert isinstance(refused.value.frame, aiormq.spec.Basic.Nack)
        assert broker.channel is not nacked
        assert nacked.is_closed and not broker.channel.is_closed
        await (await queue.get(timeout=10)).ack()
        after = _to(queue.name)
        await broker.publish_raw(after)
        assert (await queue.get(timeout=10)).message_id == after.message_id
    finally:
        await side.close()


async def test_publishes_nacked_together_replace_the_channel_once(broker: Broker) -> None:
    side, queue = await _full_queue(broker)
    try:
        with capture_logs() as logs:
            outcomes = await asyncio.gather(
                *(broker.publish_raw(_to(queue.name)) for _ in range(5)), return_exceptions=True
            )
    finally:
        await side.close()
    assert all(isinstance(outcome, DeliveryError) for outcome in outcomes), outcomes
    assert [entry["event"] for entry in logs].count("broker.publish_channel_replaced") == 1
