"""The test's own broker connection: raw publishing, queue counts as the broker reports them, event taps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from shared.events import Event, decode
from shared.topology import Topology


class TapFactory(Protocol):
    async def __call__(self, *routing_keys: str) -> EventTap: ...


@pytest.fixture
async def amqp(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    """The test's own broker connection, named after the test, for publishing raw messages and inspecting queues."""
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": f"test:{request.node.name}"}
    )
    yield connection
    await connection.close()


async def queue_counts(connection: AbstractRobustConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, as the broker reports them; fails if there is no such queue."""
    # A channel of its own: a passive declare of a missing queue closes the channel it was sent on.
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        if not channel.is_closed:
            await channel.close()


class EventTap:
    """A temporary queue of the test's own, bound to the events exchange, that nobody consumes."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue

    async def count(self) -> int:
        # Re-declared for a fresh count: a robust channel answers a passive declare from its cache.
        return (await self.queue.declare()).message_count or 0

    async def events(self) -> list[Event]:
        """Take everything the queue holds, decoded."""
        found: list[Event] = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            found.append(decode(message.body)[0])
        return found


@pytest.fixture
async def tap(amqp: AbstractRobustConnection, topology: Topology) -> AsyncIterator[TapFactory]:
    """Bind queues to the events exchange (declared by the app or worker first) to count what is published."""
    channel = await amqp.channel()

    async def bind(*routing_keys: str) -> EventTap:
        events = await channel.get_exchange(topology.events_exchange, ensure=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True, robust=False)
        for key in routing_keys:
            await queue.bind(events, key)
        return EventTap(channel, queue)

    yield bind
    await channel.close()
