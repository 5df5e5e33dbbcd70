"""Dead letters against the real broker: listed with their reason, looked at without loss, re-queued, purged."""

from __future__ import annotations

from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from shared.broker import Broker, Delivery, consume
from shared.domain import Tier
from shared.topology import DELIVERY_LIMIT, Topology
from tests.conftest import Client
from tests.harness.broker import queue_counts
from tests.harness.monitor import admin_json, admin_post_headers
from tests.harness.poll import poll

pytestmark = pytest.mark.integration
DEAD = "/admin/queues/dead-letters"


async def _post(monitor: Client, path: str) -> tuple[int, Any]:
    response = await monitor.post(path, headers=await admin_post_headers(monitor))
    return response.status, await response.json()


async def _dead_count(amqp: AbstractRobustConnection, topology: Topology) -> int:
    return (await queue_counts(amqp, topology.dead_letter_queue))[0]


async def _poison_through_a_consumer(broker: Broker, amqp: AbstractRobustConnection, topology: Topology) -> None:
    """A body no event decodes, taken from a work queue by the shared delivery code, as the worker would."""
    work = topology.work_queue(Tier.FREE)

    async def never(_: Delivery) -> None:
        pytest.fail("an undecodable message reached the handler")

    channel = await broker.connection.channel()
    queue, tag = await consume(broker, channel, work, never)
    await broker.channel.default_exchange.publish(
        aio_pika.Message(b'{"not": "an event"}', message_id="poison-1"), routing_key=work
    )

    async def dead() -> bool:
        return await _dead_count(amqp, topology) == 1

    await poll(dead, what="the poison message in the dead-letter queue")
    await queue.cancel(tag)
    await channel.close()


async def test_a_poison_message_is_listed_and_requeued(
    monitor: Client, broker: Broker, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    await _poison_through_a_consumer(broker, amqp, topology)
    for _ in range(3):  # looking does not consume: the message is there every time
        listing = await admin_json(monitor, "/admin/queues")
        assert listing["dead_letters"]["total"] == 1
    [letter] = listing["dead_letters"]["messages"]
    assert letter["key"] == letter["message_id"] == "poison-1"
    assert letter["reason"].startswith("invalid envelope")
    assert letter["origin"] == topology.work_queue(Tier.FREE)
    assert letter["dead_lettered_at"] is not None
    assert {q["name"]: q["kind"] for q in listing["queues"]}[topology.dead_letter_queue] == "dead_letter"

    status, body = await _post(monitor, f"{DEAD}/poison-1/requeue")
    assert status == 200 and body["requeued"]["origin"] == topology.work_queue(Tier.FREE)
    assert await _dead_count(amqp, topology) == 0
    assert (await queue_counts(amqp, topology.work_queue(Tier.FREE)))[0] == 1
    channel = await amqp.channel()
    back = await (await channel.get_queue(topology.work_queue(Tier.FREE), ensure=False)).get(no_ack=True)
    assert back.body == b'{"not": "an event"}' and back.message_id == "poison-1"
    assert "x-luster-reason" not in (back.headers or {}) and "x-luster-requeued-at" in (back.headers or {})
    await channel.close()
    status, body = await _post(monitor, f"{DEAD}/poison-1/requeue")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_broker_dead_letters_at_the_delivery_limit_and_requeue_all(
    monitor: Client, broker: Broker, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    work = topology.work_queue(Tier.PREMIUM)
    await broker.channel.default_exchange.publish(aio_pika.Message(b"{}", message_id="crashy"), routing_key=work)
    channel = await amqp.channel()
    queue = await channel.get_queue(work, ensure=False)
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        await message.nack(requeue=True)  # a worker crashing on it, over and over
    await channel.close()
    await broker.channel.default_exchange.publish(  # and one with nowhere to go back to
        aio_pika.Message(b"orphan", message_id="orphan"), routing_key=topology.dead_letter_queue
    )

    listing = await admin_json(monitor, "/admin/queues")
    letters = {m["key"]: m for m in listing["dead_letters"]["messages"]}
    assert letters["crashy"]["reason"] == "delivery_limit by the broker"
    assert letters["crashy"]["attempts"] == DELIVERY_LIMIT + 1
    assert letters["crashy"]["origin"] == work
    assert letters["orphan"]["origin"] is None
    status, body = await _post(monitor, f"{DEAD}/orphan/requeue")
    assert (status, body["error"]["code"]) == (409, "conflict")

    status, body = await _post(monitor, f"{DEAD}/requeue")
    assert (status, body) == (200, {"requeued": 1, "kept": 1})
    assert (await queue_counts(amqp, work))[0] == 1
    assert await _dead_count(amqp, topology) == 1

    status, body = await _post(monitor, f"{DEAD}/purge")
    assert (status, body) == (200, {"purged": 1})
    assert (await admin_json(monitor, "/admin/queues"))["dead_letters"]["total"] == 0
