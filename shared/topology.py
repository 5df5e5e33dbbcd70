"""Every exchange, queue and binding Luster uses, as data, declared idempotently in one place.

events (topic) ── job.queued.<tier> ──> jobs.<tier> (quorum, delivery limit) ──x──> dead (fanout) ──> dead-letter
               └─ #  ────────────────> monitor (bounded)
retry.<tier>.<n> (per-message TTL) ──expires──> default exchange ──> jobs.<tier>
outbox ── default exchange ──> webhooks (quorum) <──expires── webhooks.retry.<n>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

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
        return f"{self.prefix}.monitor"

    def work_queue(self, tier: Tier) -> str:
        return f"{self.prefix}.jobs.{tier}"

    def retry_queue(self, tier: Tier, level: int) -> str:
        return f"{self.prefix}.retry.{tier}.{level}"

    @property
    def webhook_queue(self) -> str:
        return f"{self.prefix}.webhooks"

    def webhook_retry_queue(self, level: int) -> str:
        return f"{self.prefix}.webhooks.retry.{level}"

    def retry_level(self, attempt: int) -> int:
        return min(max(attempt - 1, 0), len(RETRY_DELAYS_MS) - 1)

    def all_queues(self) -> list[str]:
        queues = [self.work_queue(tier) for tier in Tier]
        queues += [self.retry_queue(t, n) for t in Tier for n in range(len(RETRY_DELAYS_MS))]
        queues += [self.webhook_queue, *(self.webhook_retry_queue(n) for n in range(len(WEBHOOK_RETRY_DELAYS_MS)))]
        return [*queues, self.dead_letter_queue, self.monitor_queue]


def queued_routing_key(tier: Tier) -> str:
    return f"job.queued.{tier}"


def _work_queue_arguments(topology: Topology) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": topology.dead_exchange,
    }


def _retry_queue_arguments(topology: Topology, tier: Tier) -> dict[str, Any]:
    # Expired messages go straight back to their work queue through the default exchange,
    # so a retry is not announced again on the events exchange.
    # Classic, not quorum: per-message expiry (our jitter) is what classic queues do well.
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": topology.work_queue(tier),
    }


async def declare(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """Declare the whole topology; safe to call from every process at every start."""
    events = await channel.declare_exchange(topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    dead = await channel.declare_exchange(topology.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    dead_letters = await channel.declare_queue(
        topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead_letters.bind(dead)
    for tier in Tier:
        work = await channel.declare_queue(
            topology.work_queue(tier), durable=True, arguments=_work_queue_arguments(topology)
        )
        await work.bind(events, queued_routing_key(tier))
        for level in range(len(RETRY_DELAYS_MS)):
            await channel.declare_queue(
                topology.retry_queue(tier, level), durable=True, arguments=_retry_queue_arguments(topology, tier)
            )
    await _declare_webhook_queues(channel, topology)
    monitor = await channel.declare_queue(
        topology.monitor_queue,
        durable=True,
        arguments={"x-max-length": MONITOR_MAX_LENGTH, "x-overflow": "drop-head"},
    )
    await monitor.bind(events, "#")
    return events


async def _declare_webhook_queues(channel: AbstractChannel, topology: Topology) -> None:
    """Deliveries wait in `webhooks`; a retry waits out its backoff in a delay queue of its level."""
    await channel.declare_queue(topology.webhook_queue, durable=True, arguments=_work_queue_arguments(topology))
    for level in range(len(WEBHOOK_RETRY_DELAYS_MS)):
        await channel.declare_queue(
            topology.webhook_retry_queue(level),
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": topology.webhook_queue},
        )
