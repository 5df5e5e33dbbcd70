"""Queue depths and consumer counts of every Luster queue, as the broker reports them.

Over AMQP with passive declares by default; through the RabbitMQ management API when it is
configured (one request for all queues, plus unacknowledged counts), falling back to AMQP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity
from aiormq import spec

from shared.domain import Tier
from shared.topology import RETRY_DELAYS_MS, WEBHOOK_RETRY_DELAYS_MS, Topology

log = structlog.get_logger()
QueueKind = Literal["work", "retry", "webhook", "webhook_retry", "dead_letter", "monitor"]
INSPECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class QueueStat:
    name: str
    kind: QueueKind
    messages: int | None  # ready to deliver; None when the broker does not know the queue
    consumers: int | None
    unacked: int | None = None  # known through the management API only


def kinds(topology: Topology) -> dict[str, QueueKind]:
    found: dict[str, QueueKind] = {topology.work_queue(tier): "work" for tier in Tier}
    found |= {topology.retry_queue(t, n): "retry" for t in Tier for n in range(len(RETRY_DELAYS_MS))}
    # Webhooks waiting to be sent, and waiting out a backoff: not jobs, so no part of the queue depth.
    found[topology.webhook_queue] = "webhook"
    found |= {topology.webhook_retry_queue(n): "webhook_retry" for n in range(len(WEBHOOK_RETRY_DELAYS_MS))}
    return found | {topology.dead_letter_queue: "dead_letter", topology.monitor_queue: "monitor"}


async def passive_declare(channel: AbstractChannel, name: str) -> spec.Queue.DeclareOk:
    """The broker's current counts. Below aio-pika on purpose: a robust channel answers a repeated
    passive `declare_queue` from its own cache, so the counts would never change after the first look."""
    underlay = await channel.get_underlay_channel()
    return await underlay.queue_declare(name, passive=True)


class AmqpQueues:
    """Passive declares on a channel of this round's own.

    A passive declare of a missing queue makes the broker close the channel, and aio-pika's robust
    channel then quietly reopens itself: such a channel is closed explicitly (or every check would
    leak one until the connection hits channel_max) and the round goes on with a fresh one.
    """

    def __init__(self, connection: AbstractRobustConnection, topology: Topology) -> None:
        self.connection = connection
        self.kinds = kinds(topology)

    async def inspect(self) -> list[QueueStat]:
        async with asyncio.timeout(INSPECT_TIMEOUT_S):
            pending, stats = list(self.kinds.items()), []
            while pending:
                stats += await self._round(pending)
            return stats

    async def _round(self, pending: list[tuple[str, QueueKind]]) -> list[QueueStat]:
        """Take queues off `pending` on one channel, until done or a missing queue kills the channel."""
        channel = await self.connection.channel()
        stats = []
        try:
            while pending:
                name, kind = pending.pop(0)
                try:
                    result = await passive_declare(channel, name)
                except ChannelNotFoundEntity:
                    stats.append(QueueStat(name, kind, None, None))
                    break
                stats.append(QueueStat(name, kind, result.message_count, result.consumer_count))
        finally:
            await channel.close()
        return stats


def _vhost(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


class ManagementQueues:
    """GET /api/queues/{vhost} of the management plugin; credentials from its URL, else the AMQP URL's."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, amqp_url: str, topology: Topology) -> None:
        parts, amqp = urlsplit(base_url), urlsplit(amqp_url)
        user, password = parts.username or amqp.username or "guest", parts.password or amqp.password or "guest"
        netloc = parts.hostname or ""
        netloc += f":{parts.port}" if parts.port else ""
        self.url = f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}/api/queues/{quote(_vhost(amqp_url), safe='')}"
        self.headers = {"Authorization": aiohttp.encode_basic_auth(unquote(user), unquote(password))}
        self.session = session
        self.kinds = kinds(topology)

    async def inspect(self) -> list[QueueStat]:
        params = {"columns": "name,messages_ready,messages_unacknowledged,consumers"}
        timeout = aiohttp.ClientTimeout(total=INSPECT_TIMEOUT_S)
        async with self.session.get(self.url, params=params, headers=self.headers, timeout=timeout) as response:
            response.raise_for_status()
            rows: list[dict[str, Any]] = await response.json()
        by_name = {row.get("name"): row for row in rows}
        return [self._stat(name, kind, by_name.get(name)) for name, kind in self.kinds.items()]

    @staticmethod
    def _stat(name: str, kind: QueueKind, row: dict[str, Any] | None) -> QueueStat:
        if row is None:
            return QueueStat(name, kind, None, None)
        return QueueStat(
            name, kind, row.get("messages_ready"), row.get("consumers"), row.get("messages_unacknowledged")
        )


class Queues:
    """The management API when configured and answering, AMQP otherwise."""

    def __init__(self, amqp: AmqpQueues, management: ManagementQueues | None = None) -> None:
        self.amqp = amqp
        self.management = management
        self.source: Literal["amqp", "management"] = "amqp"

    async def inspect(self) -> list[QueueStat]:
        if self.management is not None:
            try:
                stats = await self.management.inspect()
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                log.warning("queues.management_failed", error=repr(error))
            else:
                self.source = "management"
                return stats
        self.source = "amqp"
        return await self.amqp.inspect()


def work_depth(stats: list[QueueStat]) -> int:
    """Jobs waiting for a worker: ready messages in the work queues (retries still in delay are not ready)."""
    return sum(stat.messages or 0 for stat in stats if stat.kind == "work")


def work_consumers(stats: list[QueueStat]) -> int | None:
    """Consumers on the busiest-served work queue (each worker consumes every tier); None when unknown."""
    counts = [stat.consumers for stat in stats if stat.kind == "work" and stat.consumers is not None]
    return max(counts) if counts else None
