"""The monitor's consumer against the real broker: every event folded once and acknowledged, in bulk or not,
a body that is no event dead-lettered on the way."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.broker.consumer import ACK_EVERY, EventConsumer
from shared.broker import Broker, event_message
from shared.domain import Tier
from shared.events import Event, JobFailed, JobStarted, make_event
from shared.topology import Topology
from tests.harness.broker import queue_counts
from tests.harness.poll import poll

pytestmark = pytest.mark.integration
JOBS = ACK_EVERY * 2 + 3  # whole bulks and a remainder that only the delay acknowledges


def _events() -> list[Event]:
    now = datetime.now(UTC)
    events = []
    for _ in range(JOBS):
        job_id = uuid.uuid4()
        started = JobStarted(worker_id="w-1", tier=Tier.FREE, attempt=1, queued_at=now)
        failed = JobFailed(
            worker_id="w-1", tier=Tier.FREE, attempt=1, error_code="boom", error_message="boom", queued_at=now
        )
        events += [make_event(started, job_id=job_id), make_event(failed, job_id=job_id)]
    return events


async def _publish(broker: Broker, events: list[Event]) -> None:
    for event in events:
        await broker.publish_raw(event_message(event, exchange="", routing_key=broker.topology.monitor_queue))


async def test_every_event_counts_once_and_nothing_is_left_unacknowledged(
    broker: Broker, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    aggregator = Aggregator()
    consumer = EventConsumer(broker, aggregator, WorkerRegistry(3.0))
    await consumer.start()
    events = _events()
    await _publish(broker, events[:JOBS])
    await broker.channel.default_exchange.publish(
        aio_pika.Message(b"not an event", message_id="poison-1"), routing_key=topology.monitor_queue
    )
    await _publish(broker, events[JOBS:])
    await _publish(broker, events[:3])  # redelivered, as after a crash: counted once

    async def settled() -> bool:
        dead, _ = await queue_counts(amqp, topology.dead_letter_queue)
        return sum(aggregator.totals.values()) == len(events) and aggregator.duplicates == 3 and dead == 1

    await poll(settled, what="every event folded once and the poison dead-lettered")
    await consumer.stop()
    # Closing the channel would hand back anything unacknowledged: the queue stays empty.
    assert await queue_counts(amqp, topology.monitor_queue) == (0, 0)
    assert aggregator.snapshot(datetime.now(UTC).timestamp()).windows["1m"].errors_by_code == {"boom": JOBS}
