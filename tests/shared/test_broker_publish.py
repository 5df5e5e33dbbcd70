"""Broker.publish_raw: what a consumer receives, and what the broker refuses."""

from __future__ import annotations

import time
import uuid

import aio_pika
import pytest
from aio_pika.exceptions import PublishError

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
