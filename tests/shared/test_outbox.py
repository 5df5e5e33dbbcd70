"""The outbox: what a request stages is published after the commit, or later by the relay, in its own trace."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import outbox
from shared.broker import Broker, event_message
from shared.domain import Tier
from shared.events import JobCanceled, make_event
from shared.outbox import publishing
from shared.telemetry.tracing import tracer
from shared.topology import Topology

pytestmark = pytest.mark.integration

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Spans this process makes, kept in memory (the global provider can be set once per process)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return _EXPORTER


async def _stage_in_request(pool: asyncpg.Pool, broker: Broker) -> tuple[outbox.Staged, trace.SpanContext]:
    """What POST /jobs does up to its commit: stage a message inside the request's span."""
    with tracer.start_as_current_span("POST /jobs") as request_span:
        event = make_event(JobCanceled(tier=Tier.FREE))
        message = event_message(event, exchange=broker.topology.events_exchange, routing_key="job.canceled")
        async with pool.acquire() as connection:
            staged = await outbox.stage(connection, message)
    return staged, request_span.get_span_context()


async def _tap(broker: Broker, routing_key: str) -> aio_pika.abc.AbstractQueue:
    channel = await broker.connection.channel()
    exchange = await channel.get_exchange(broker.topology.events_exchange)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key)
    return queue


def _named(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [span for span in finished if span.name == name]
    return span


async def test_the_relay_publishes_what_was_left_in_the_requests_trace(
    pool: asyncpg.Pool, broker: Broker, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    tap = await _tap(broker, "job.canceled")
    staged, request = await _stage_in_request(pool, broker)

    assert await outbox.relay_once(pool, broker, min_age_s=0) == 1

    assert await pool.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1", staged.outbox_id)
    finished = spans.get_finished_spans()
    relay, publish = _named(finished, "outbox relay"), _named(finished, "publish job.canceled")
    assert publish.context.trace_id == request.trace_id  # the job's trace, not the relay's
    assert publish.parent is not None and publish.parent.span_id == request.span_id
    assert [link.context.span_id for link in publish.links] == [relay.context.span_id]
    assert publish.attributes is not None and publish.attributes["messaging.system"] == "rabbitmq"
    message = await tap.get(timeout=5)
    traceparent = str((message.headers or {})["traceparent"])
    assert traceparent.split("-")[1] == format(request.trace_id, "032x")
    assert traceparent.split("-")[2] == format(publish.context.span_id, "016x")


async def test_a_published_row_is_not_published_again(pool: asyncpg.Pool, broker: Broker) -> None:
    tap = await _tap(broker, "job.canceled")
    staged, _ = await _stage_in_request(pool, broker)

    assert await outbox.flush(pool, broker, [staged])
    await outbox.settle(pool)  # the mark is written after the publish, off the caller's path
    assert await outbox.relay_once(pool, broker, min_age_s=0) == 0
    await tap.get(timeout=5)
    assert await tap.get(fail=False, timeout=1) is None


async def test_the_marks_of_concurrent_publishes_are_all_written_by_the_time_the_pool_settles(
    pool: asyncpg.Pool, broker: Broker
) -> None:
    tap = await _tap(broker, "job.canceled")
    staged = [(await _stage_in_request(pool, broker))[0] for _ in range(40)]

    published = await asyncio.gather(*(outbox.flush(pool, broker, [item]) for item in staged))
    await outbox.settle(pool)

    assert all(published)
    ids = [item.outbox_id for item in staged]
    unmarked = "SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
    assert await pool.fetchval(unmarked, ids) == 0
    assert await outbox.relay_once(pool, broker, min_age_s=0) == 0
    assert len([await tap.get(timeout=5) for _ in staged]) == len(staged)


async def test_marks_added_one_after_another_share_one_update(
    pool: asyncpg.Pool, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gathering window far longer than the loop turns below take, however loaded the machine.
    monkeypatch.setattr(publishing, "MARK_GATHER_S", 1.0)
    staged = [(await _stage_in_request(pool, broker))[0] for _ in range(3)]
    updates: list[list[int]] = []

    class CountingPool:
        """The pool, with the marks' UPDATEs counted (asyncpg's Pool takes no attribute of ours)."""

        async def execute(self, query: str, *args: Any) -> str:
            if "UPDATE outbox SET published_at" in query:
                updates.append(list(args[0]))
            return await pool.execute(query, *args)

    marks = outbox.PublishedMarks(CountingPool())  # type: ignore[arg-type]  # only execute is used
    for item in staged:
        marks.add([item.outbox_id])
        await asyncio.sleep(0)  # a turn of the loop: without the window, the first UPDATE would start here
    await marks.settle()

    assert updates == [[item.outbox_id for item in staged]]
    unmarked = "SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
    assert await pool.fetchval(unmarked, [item.outbox_id for item in staged]) == 0


async def test_flush_leaves_the_row_to_the_relay_while_the_broker_is_away(
    pool: asyncpg.Pool, broker: Broker, amqp_url: str, topology: Topology
) -> None:
    staged, _ = await _stage_in_request(pool, broker)
    await broker.close()

    assert await outbox.flush(pool, broker, [staged]) is False

    assert await pool.fetchval("SELECT published_at FROM outbox WHERE id = $1", staged.outbox_id) is None
    back = await Broker.connect(amqp_url, topology, name="test-outbox-back", startup_timeout=10)
    try:
        tap = await _tap(back, "job.canceled")
        assert await outbox.relay_once(pool, back, min_age_s=0) == 1
        assert (await tap.get(timeout=5)).message_id == staged.message.message_id
    finally:
        await back.close()
