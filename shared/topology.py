"""Every exchange, queue and binding Luster uses, as data, declared idempotently in one place.

events (topic) ── job.queued.<tier> ──> jobs.<tier> (delivery limit) ──x──> dead (fanout) ──> dead-letter
               └─ #  ────────────────> monitor.events (bounded)
delay.<tier>.<n> (per-message TTL) ──expires──> default exchange ──> jobs.<tier>
outbox ── default exchange ──> webhooks <──expires── webhooks.delay.<n>

Every queue is a quorum queue, replicated on every node of a cluster (RabbitMQ's default group size), so
no node's death takes a queue, its messages or a publisher's route away while a majority of nodes runs.
Until 2026-12 the delay and monitor queues were classic ones, under other names
(`Topology.retired_queues`, deleted by `retire`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from shared.domain import Tier

# Backoff levels of the retry delay queues; a message waits in the level of its attempt.
RETRY_DELAYS_MS: Final = (1_000, 5_000, 30_000, 120_000)
DELIVERY_LIMIT: Final = 5
# Backoff of a webhook that did not answer 2xx, attempt after attempt: about 2.5 hours in all, so a
# receiver down for a deploy or an afternoon's outage still gets every delivery.
WEBHOOK_RETRY_DELAYS_MS: Final = (5_000, 30_000, 120_000, 600_000, 1_800_000, 7_200_000)
MONITOR_MAX_LENGTH: Final = 100_000


@dataclass(frozen=True)
class Topology:
    prefix: str = "luster"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def monitor_queue(self) -> str:
        return f"{self.prefix}.monitor.events"

    def work_queue(self, tier: Tier) -> str:
        return f"{self.prefix}.jobs.{tier}"

    def retry_queue(self, tier: Tier, level: int) -> str:
        return f"{self.prefix}.delay.{tier}.{level}"

    @property
    def webhook_queue(self) -> str:
        return f"{self.prefix}.webhooks"

    def webhook_retry_queue(self, level: int) -> str:
        return f"{self.prefix}.webhooks.delay.{level}"

    def retired_queues(self) -> list[tuple[str, bool]]:
        """The classic queues the quorum ones above replaced (a queue's type cannot change under its name),
        each with whether it must be empty before it goes: a delay queue's messages still expire into their
        work queue, the old monitor queue's events are the new monitor's to miss."""
        retry = [f"{self.prefix}.retry.{tier}.{n}" for tier in Tier for n in range(len(RETRY_DELAYS_MS))]
        webhooks = [f"{self.prefix}.webhooks.retry.{n}" for n in range(len(WEBHOOK_RETRY_DELAYS_MS))]
        return [*((name, True) for name in [*retry, *webhooks]), (f"{self.prefix}.monitor", False)]

    def retry_level(self, attempt: int) -> int:
        return min(max(attempt - 1, 0), len(RETRY_DELAYS_MS) - 1)

    def all_queues(self) -> list[str]:
        queues = [self.work_queue(tier) for tier in Tier]
        queues += [self.retry_queue(t, n) for t in Tier for n in range(len(RETRY_DELAYS_MS))]
        queues += [self.webhook_queue, *(self.webhook_retry_queue(n) for n in range(len(WEBHOOK_RETRY_DELAYS_MS)))]
        return [*queues, self.dead_letter_queue, self.monitor_queue]


def queued_routing_key(tier: Tier) -> str:
    return f"job.queued.{tier}"


QUORUM: Final[dict[str, Any]] = {"x-queue-type": "quorum"}
# Bounded, oldest first out: a stopped monitor must not grow the broker without limit.
MONITOR_QUEUE_ARGUMENTS: Final[dict[str, Any]] = {
    **QUORUM,
    "x-max-length": MONITOR_MAX_LENGTH,
    "x-overflow": "drop-head",
}


def _work_queue_arguments(topology: Topology) -> dict[str, Any]:
    return {**QUORUM, "x-delivery-limit": DELIVERY_LIMIT, "x-dead-letter-exchange": topology.dead_exchange}


def _delay_queue_arguments(work_queue: str) -> dict[str, Any]:
    # Expired messages go straight back to their work queue through the default exchange, so a retry is
    # not announced again on the events exchange. At-least-once dead-lettering: an expired message leaves
    # only once its work queue has it, even across a leader change (RabbitMQ asks reject-publish for it).
    return {
        **QUORUM,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": work_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def declare(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """Declare the whole topology; safe to call from every process at every start."""
    events = await channel.declare_exchange(topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_exchange(topology.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_letters = await channel.declare_queue(topology.dead_letter_queue, durable=True, arguments=QUORUM)
    await dead_letters.bind(dead)
    for tier in Tier:
        work = await channel.declare_queue(
            topology.work_queue(tier), durable=True, arguments=_work_queue_arguments(topology)
        )
        await work.bind(events, queued_routing_key(tier))
        for level in range(len(RETRY_DELAYS_MS)):
            await channel.declare_queue(
                topology.retry_queue(tier, level), durable=True, arguments=_delay_queue_arguments(work.name)
            )
    await _declare_webhook_queues(channel, topology)
    monitor = await channel.declare_queue(
        topology.monitor_queue,
        durable=True,
        arguments=MONITOR_QUEUE_ARGUMENTS,
    )
    await monitor.bind(events, "#")
    return events


async def retire(connection: AbstractConnection, topology: Topology) -> None:
    """Delete the classic queues of the old topology once nothing needs them.

    A delay queue goes once empty (its messages expire into their work queue meanwhile); the old monitor
    queue once no monitor consumes it: the monitor of this release reads the new one. A queue that is still
    needed is left; the broker refuses by closing the channel, so the next queue gets a fresh one (deleting
    a queue that is gone already is no refusal).
    """
    retiring = await connection.channel()
    try:
        for name, if_empty in topology.retired_queues():
            if retiring.is_closed:
                retiring = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                await retiring.queue_delete(name, if_unused=True, if_empty=if_empty)
    finally:
        if not retiring.is_closed:
            await retiring.close()


async def _declare_webhook_queues(channel: AbstractChannel, topology: Topology) -> None:
    """Deliveries wait in `webhooks`; a retry waits out its backoff in a delay queue of its level."""
    await channel.declare_queue(topology.webhook_queue, durable=True, arguments=_work_queue_arguments(topology))
    for level in range(len(WEBHOOK_RETRY_DELAYS_MS)):
        await channel.declare_queue(
            topology.webhook_retry_queue(level),
            durable=True,
            arguments=_delay_queue_arguments(topology.webhook_queue),
        )
