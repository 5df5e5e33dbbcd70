"""The transactional outbox: messages committed with a state change, published after the commit.

`stage` writes a message in the caller's transaction; `flush` publishes what that transaction staged
right after its commit; `relay` publishes whatever is left behind (broker down, process killed).
Each message may be published more than once, never zero times: consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from shared.broker import BROKER_DOWN_ERRORS, Broker
from shared.db import DATABASE_DOWN_ERRORS, RELAXED_COMMIT, Connection
from shared.messages import OutgoingMessage
from shared.telemetry.logs import brief
from shared.telemetry.tracing import tracer, untraced

log = structlog.get_logger()

PUBLISH_TIMEOUT_S = 10.0
# A dependency away is routine here (what is not published now is published later); anything else is a bug.
DEPENDENCY_DOWN_ERRORS = (*DATABASE_DOWN_ERRORS, *BROKER_DOWN_ERRORS)


@dataclass(frozen=True)
class Staged:
    """A message written in a transaction, to publish once that transaction has committed."""

    outbox_id: int
    message: OutgoingMessage


OUTBOX_COLUMNS = ("message_id", "exchange", "routing_key", "body", "headers", "expiration_ms")


# A lost mark only means the relay publishes the message again, which consumers take in their stride.
_MARK_PUBLISHED = f"""
WITH {RELAXED_COMMIT}
UPDATE outbox SET published_at = now() FROM relaxed_commit WHERE id = ANY($1::bigint[])
"""


def outbox_arguments(message: OutgoingMessage) -> tuple[Any, ...]:
    """The values of a message for OUTBOX_COLUMNS, in their order."""
    return (
        message.message_id,
        message.exchange,
        message.routing_key,
        message.body,
        dict(message.headers),
        message.expiration_ms,
    )


class Outbox:
    """A transaction's connection, and the messages staged in it to publish once it has committed."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.staged: list[Staged] = []

    async def stage(self, message: OutgoingMessage) -> None:
        self.staged.append(await stage(self.connection, message))

    def publish_after_commit(self, staged: Sequence[Staged]) -> None:
        """Messages already in the outbox (say, released from holding) to publish with this transaction's."""
        self.staged.extend(staged)


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool, broker: Broker) -> AsyncIterator[Outbox]:
    """A transaction whose staged messages are published right after it commits (by the relay, if not then).

    Nothing is published when the block raises: the transaction rolls back, and its messages with it.
    """
    async with pool.acquire() as connection, connection.transaction():
        box = Outbox(connection)
        yield box
    await flush(pool, broker, box.staged)


async def stage(connection: Connection, message: OutgoingMessage) -> Staged:
    outbox_id = await connection.fetchval(
        """
        INSERT INTO outbox (message_id, exchange, routing_key, body, headers, expiration_ms)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
        """,
        *outbox_arguments(message),
    )
    return Staged(int(outbox_id), message)


# Insertion follows the messages' order, and the identity column numbers rows as they are inserted, so the
# ids in ascending order are the messages' in theirs.
_STAGE_MANY = f"""
INSERT INTO outbox ({", ".join(OUTBOX_COLUMNS)})
SELECT {", ".join(OUTBOX_COLUMNS)}
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[], $6::int[])
    WITH ORDINALITY AS staged({", ".join(OUTBOX_COLUMNS)}, place)
ORDER BY place
RETURNING id
"""


async def stage_many(connection: Connection, messages: Sequence[OutgoingMessage]) -> list[Staged]:
    """`stage` for several messages in one statement."""
    columns = zip(*(outbox_arguments(message) for message in messages), strict=True)
    records = await connection.fetch(_STAGE_MANY, *(list(column) for column in columns))
    ids = sorted(int(record["id"]) for record in records)
    return [Staged(outbox_id, message) for outbox_id, message in zip(ids, messages, strict=True)]


def message_of(record: asyncpg.Record) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=record["exchange"],
        routing_key=record["routing_key"],
        body=bytes(record["body"]),
        message_id=record["message_id"],
        headers=record["headers"],
        expiration_ms=record["expiration_ms"],
    )


async def flush(pool: asyncpg.Pool, broker: Broker, staged: Sequence[Staged]) -> bool:
    """Publish committed messages now; on failure the rest is left to the relay (the broker may be away)."""
    published: list[int] = []
    if not await broker.is_healthy():
        return False  # don't hold the caller while the connection recovers: the relay will publish
    try:
        for item in staged:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await broker.publish_raw(item.message)
            published.append(item.outbox_id)
    except Exception as error:
        _log_failure("outbox.publish_deferred", error)
    finally:
        if published:
            marks_of(pool).add(published)
    return len(published) == len(staged)


class PublishedMarks:
    """Outbox rows published and not yet marked so, marked by a task of their own, many in one UPDATE.

    The caller of a publish does not wait for its mark (a round trip to PostgreSQL on every request and
    every job transition otherwise): the mark only keeps the relay from publishing the message again,
    and a mark lost with the process only means that it does, which consumers take in their stride.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._pending: list[int] = []
        self._marking: asyncio.Task[None] | None = None

    def add(self, outbox_ids: Sequence[int]) -> None:
        self._pending.extend(outbox_ids)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.get_running_loop().create_task(self._mark_pending())

    async def _mark_pending(self) -> None:
        # What arrives while an UPDATE is under way waits for it, then goes in the next one.
        while self._pending:
            outbox_ids, self._pending = self._pending, []
            try:
                with untraced():  # bookkeeping: the publish span already tells the story
                    await self._pool.execute(_MARK_PUBLISHED, outbox_ids)
            except Exception as error:
                _log_failure("outbox.mark_deferred", error)

    async def settle(self) -> None:
        """Wait for the marks under way: before the pool closes, so that none is lost to a clean stop."""
        if self._marking is not None:
            await asyncio.shield(self._marking)


# By the pool's id: asyncpg's pools take no weak references. `settle` forgets a pool; it is called where
# pools close, and a pool never settled (a test's) only stays in memory.
_MARKS: dict[int, PublishedMarks] = {}


def marks_of(pool: asyncpg.Pool) -> PublishedMarks:
    """The pool's marks: one per pool, so that one UPDATE serves every publisher of the process."""
    marks = _MARKS.get(id(pool))
    if marks is None:
        marks = _MARKS[id(pool)] = PublishedMarks(pool)
    return marks


async def settle(pool: asyncpg.Pool) -> None:
    """Mark what was published through `pool`, before it closes."""
    marks = _MARKS.pop(id(pool), None)
    if marks is not None:
        await marks.settle()


async def relay_once(pool: asyncpg.Pool, broker: Broker, *, min_age_s: float = 5.0, batch: int = 100) -> int:
    """Publish one batch of rows older than `min_age_s`; safe with several relays at once."""
    # Polling is untraced; what it publishes still joins each job's trace (see publish_span).
    with untraced():
        async with pool.acquire() as connection, connection.transaction():
            records = await connection.fetch(
                """
                SELECT * FROM outbox
                WHERE published_at IS NULL AND held_job IS NULL AND created_at < now() - make_interval(secs => $1)
                ORDER BY id LIMIT $2
                FOR UPDATE SKIP LOCKED
                """,
                min_age_s,
                batch,
            )
            if records:
                await _publish_batch(connection, broker, records)
    return len(records)


async def _publish_batch(connection: Connection, broker: Broker, records: list[asyncpg.Record]) -> None:
    with tracer.start_as_current_span("outbox relay", attributes={"luster.outbox.batch": len(records)}):
        for record in records:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await broker.publish_raw(message_of(record))
            await connection.execute("UPDATE outbox SET published_at = now() WHERE id = $1", record["id"])


async def prune(pool: asyncpg.Pool, *, keep_s: float = 86_400.0) -> None:
    await pool.execute("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)", keep_s)


async def relay(
    pool: asyncpg.Pool,
    broker: Broker,
    *,
    interval_s: float = 2.0,
    min_age_s: float = 5.0,
    release: Callable[[asyncpg.Pool], Awaitable[int]] | None = None,
) -> None:
    """Run until cancelled: publish leftovers, and keep the table small. `release`, before each pass,
    frees held messages for it to publish (shared/fairshare.py)."""
    rounds = 0
    while True:
        try:
            if release is not None:
                with untraced():
                    await release(pool)
            published = await relay_once(pool, broker, min_age_s=min_age_s)
            if published:
                log.info("outbox.relayed", count=published)
            rounds += 1
            if rounds % 500 == 0:
                with untraced():
                    await prune(pool)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _log_failure("outbox.relay_failed", error)
        await asyncio.sleep(interval_s)


def _log_failure(event: str, error: Exception) -> None:
    """A dependency away in a few words; anything else with its traceback."""
    if isinstance(error, DEPENDENCY_DOWN_ERRORS):
        log.warning(event, error=brief(error))
    else:
        log.warning(event, exc_info=error)
