"""What RabbitMQ itself says about a scenario's queues: ready messages and registered consumers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from shared.domain import Tier
from shared.topology import RETRY_DELAYS_MS, Topology
from tests.harness.nodes import connect_any


@dataclass(frozen=True)
class QueueState:
    name: str
    messages: int
    consumers: int


def work_and_retry_queues(topology: Topology) -> list[str]:
    work = [topology.work_queue(tier) for tier in Tier]
    return work + [topology.retry_queue(tier, level) for tier in Tier for level in range(len(RETRY_DELAYS_MS))]


class BrokerProbe:
    """Passive declares over a connection of its own, reconnecting after a broker outage."""

    def __init__(self, amqp_url: str, topology: Topology, *, name: str) -> None:
        self.amqp_url = amqp_url
        self.topology = topology
        self.name = name
        self._connection: AbstractConnection | None = None

    async def _connect(self) -> AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            self._connection = await connect_any(self.amqp_url, name=f"chaos-probe:{self.name}")
        return self._connection

    async def state(self, queue: str) -> QueueState:
        connection = await self._connect()
        async with connection.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            return QueueState(queue, int(result.message_count or 0), int(result.consumer_count or 0))

    async def states(self, queues: list[str]) -> list[QueueState]:
        return [await self.state(queue) for queue in queues]

    async def try_states(self, queues: list[str]) -> list[QueueState] | None:
        """None while the broker cannot be asked."""
        try:
            async with asyncio.timeout(10):
                return await self.states(queues)
        except Exception:
            await self.close()
            return None

    async def publish_raw(self, queue: str, body: bytes, **properties: Any) -> None:
        """Straight into a queue through the default exchange, as a buggy or hostile publisher would."""
        connection = await self._connect()
        async with connection.channel(publisher_confirms=True) as channel:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties)
            await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)

    async def take_all(self, queue: str) -> list[AbstractIncomingMessage]:
        """Every message waiting in `queue`, consumed (acked)."""
        connection = await self._connect()
        taken: list[AbstractIncomingMessage] = []
        async with connection.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            while (message := await declared.get(fail=False, no_ack=True)) is not None:
                taken.append(message)
        return taken

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = None
