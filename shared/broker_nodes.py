"""Connecting to a RabbitMQ cluster: one robust connection that moves to the next node when one goes away.

aio-pika's robust connection reconnects to the one URL it was given, so a client of a dead node would
wait for that node to come back while two others answer. AMQP_URL may list every node; `connect` starts
at a node chosen at random (a fleet's connections spread over the cluster) and moves one node on at each
attempt, and a connection, once up, tries the next node after every lost connection or failed reconnect.
Channels, queues and consumers are restored by aio-pika as before, on whichever node answered: quorum
queues are reachable through every node of the cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from typing import Any

from aio_pika import RobustConnection
from yarl import URL

from shared.retry import retry_until_ready


class ClusterConnection(RobustConnection):
    """A robust connection over several nodes; with one node it is aio-pika's own, unchanged.

    Connection options in the query string (heartbeat, timeouts) are read from the first address.
    """

    def __init__(self, addresses: Sequence[str], **kwargs: Any) -> None:
        if not addresses:
            raise ValueError("a broker connection needs at least one address")
        self.nodes = [URL(address) for address in addresses]
        self._node = 0
        super().__init__(self.nodes[0], **kwargs)

    def _next_node(self) -> None:
        self._node = (self._node + 1) % len(self.nodes)
        self.url = self.nodes[self._node]

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # aio-pika calls this both when an open connection is lost and when an attempt to connect fails
        # (UnderlayConnection.connect), so the next attempt, after its reconnect interval, goes elsewhere.
        self._next_node()
        await super()._on_connection_close(closing)


# One attempt's limit: a node that accepts TCP but never finishes the handshake must not hold up the next.
ATTEMPT_TIMEOUT_S = 10.0
# Between reconnect attempts (aio-pika's default is 5 s): with one node of three dead, the next attempt is
# the one that finds a live node, so this is most of what a node's death costs a connection.
RECONNECT_INTERVAL_S = 1.0


async def connect(addresses: Sequence[str], *, name: str, give_up_after: float) -> ClusterConnection:
    """The first node that answers, trying each in turn from a different start, until `give_up_after`."""
    starts = itertools.count(random.randrange(len(addresses)))

    async def attempt() -> ClusterConnection:
        first = next(starts) % len(addresses)
        rotated = [*addresses[first:], *addresses[:first]]
        connection = ClusterConnection(
            rotated, reconnect_interval=RECONNECT_INTERVAL_S, client_properties={"connection_name": name}
        )
        await connection.connect(timeout=ATTEMPT_TIMEOUT_S)
        return connection

    return await retry_until_ready(attempt, what="rabbitmq", give_up_after=give_up_after)
