"""Several broker addresses: connecting to the node that answers, and moving on when one goes away."""

from __future__ import annotations

import asyncio
import random

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from yarl import URL

from shared.broker import Broker
from shared.broker_nodes import ClusterConnection
from shared.domain import Tier
from shared.events import JobCanceled, make_event
from shared.topology import Topology
from tests.harness.poll import poll

pytestmark = pytest.mark.integration

# Nothing listens on port 1: the address of a node that is down.
DOWN = "amqp://guest:guest@127.0.0.1:1/"


async def test_the_broker_connects_past_a_node_that_is_down(
    amqp_url: str, topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "randrange", lambda _: 0)  # the first attempt at the node that is down
    broker = await Broker.connect(f"{DOWN},{amqp_url}", topology, name="test-nodes", startup_timeout=20)
    try:
        await broker.publish(make_event(JobCanceled(tier=Tier.FREE)), routing_key="job.canceled")

        # A channel of its own: the robust publishing channel answers a passive declare from its cache.
        channel = await broker.connection.channel()
        queue = await channel.declare_queue(topology.monitor_queue, passive=True)
        assert queue.declaration_result.message_count == 1
        assert isinstance(broker.connection, ClusterConnection)
        assert str(broker.connection.url) == amqp_url
        assert broker.connection.nodes[-1] == URL(DOWN)  # the second attempt started at the next node
    finally:
        await broker.close()


async def test_a_lost_connection_tries_the_next_node_and_comes_back_with_its_consumer(
    amqp_url: str, topology: Topology
) -> None:
    connection = ClusterConnection([amqp_url, DOWN], reconnect_interval=0.1)
    await connection.connect(timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.monitor_queue, durable=True, arguments={"x-queue-type": "quorum"})
        received: list[bytes] = []

        async def keep(message: AbstractIncomingMessage) -> None:
            received.append(message.body)
            await message.ack()

        await queue.consume(keep)
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        tried: list[str] = []
        connection.close_callbacks.add(lambda *_: tried.append(str(connection.url)))

        # The node drops the connection: the next attempt goes to the next address (down), then round again.
        assert connection.transport is not None
        await connection.transport.connection.close()
        async with asyncio.timeout(20):
            await reconnected.wait()

        assert DOWN in tried, tried
        assert str(connection.url) == amqp_url
        await channel.default_exchange.publish(aio_pika.Message(b"after"), routing_key=topology.monitor_queue)

        async def delivered() -> bool:
            return received == [b"after"]

        await poll(delivered, what="the restored consumer's delivery")
    finally:
        await connection.close()


async def test_the_classic_queues_of_the_old_topology_retire_once_nothing_needs_them(
    amqp_url: str, topology: Topology
) -> None:
    old_monitor, old_delay = f"{topology.prefix}.monitor", f"{topology.prefix}.retry.free.0"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(old_monitor, durable=True)
        await channel.declare_queue(old_delay, durable=True)
        await channel.default_exchange.publish(aio_pika.Message(b"waiting out its delay"), routing_key=old_delay)

        broker = await Broker.connect(amqp_url, topology, name="test-retire", startup_timeout=10)
        await broker.close()

        gone = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await gone.declare_queue(old_monitor, passive=True)
        kept = await channel.declare_queue(old_delay, passive=True)
        assert kept.declaration_result.message_count == 1  # still expiring into its work queue
        await channel.queue_delete(old_delay)
