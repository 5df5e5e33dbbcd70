"""Publishing: staged messages sent right after their transaction commits, and marked published behind
the caller's back; what a failure leaves unpublished is the relay's (shared/outbox/relay.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
import structlog

from shared.broker import BROKER_DOWN_ERRORS, Broker
from shared.db import DATABASE_DOWN_ERRORS, RELAXED_COMMIT
from shared.outbox.staging import Outbox, Staged
from shared.telemetry.logs import brief
from shared.telemetry.tracing import untraced

log = structlog.get_logger()

PUBLISH_TIMEOUT_S = 10.0
# How long the marks of a burst of publishes gather before one UPDATE writes them: at a thousand
# publishes a second, a few dozen rows a statement instead of a few. Nobody waits for a mark, and the
# relay leaves rows younger than its min_age_s (5 s) alone.
MARK_GATHER_S = 0.05
# A dependency away is routine here (what is not published now is published later); anything else is a bug.
DEPENDENCY_DOWN_ERRORS = (*DATABASE_DOWN_ERRORS, *BROKER_DOWN_ERRORS)

# A lost mark only means the relay publishes the message again, which consumers take in their stride.
_MARK_PUBLISHED = f"""
WITH {RELAXED_COMMIT}
UPDATE outbox SET published_at = now() FROM relaxed_commit WHERE id = ANY($1::bigint[])
"""


@contextlib.asynccontextmanager
async def transaction(pool: asyncpg.Pool, broker: Broker) -> AsyncIterator[Outbox]:
    """A transaction whose staged messages are published right after it commits (by the relay, if not then).

    Nothing is published when the block raises: the transaction rolls back, and its messages with it.
    """
    async with pool.acquire() as connection, connection.transaction():
        box = Outbox(connection)
        yield box
    await flush(pool, broker, box.staged)


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
        log_failure("outbox.publish_deferred", error)
    finally:
        if published:
            marks_of(pool).add(published)
    return len(published) == len(staged)


class Publisher:
    """Publishes committed messages off their caller's path: the caller goes on at once (an api answers its
    202, a worker runs its engine) while a task of its own publishes and marks them. Nothing waits for the
    broker's confirms but the outbox mark, and what is not confirmed stays unmarked for the relay.
    `settle` waits for the publishes under way, before the broker closes.
    """

    def __init__(self, pool: asyncpg.Pool, broker: Broker) -> None:
        self.pool = pool
        self.broker = broker
        self._publishing: set[asyncio.Task[bool]] = set()

    def publish(self, staged: Sequence[Staged]) -> None:
        if not staged:
            return
        # Tasks start in the order they were made, so one job's messages still leave in its changes' order.
        publishing = asyncio.get_running_loop().create_task(flush(self.pool, self.broker, staged))
        self._publishing.add(publishing)
        publishing.add_done_callback(self._publishing.discard)

    async def settle(self) -> None:
        """Wait for the publishes under way (each gives up within PUBLISH_TIMEOUT_S)."""
        await asyncio.gather(*self._publishing, return_exceptions=True)


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
            await asyncio.sleep(MARK_GATHER_S)
            outbox_ids, self._pending = self._pending, []
            try:
                with untraced():  # bookkeeping: the publish span already tells the story
                    await self._pool.execute(_MARK_PUBLISHED, outbox_ids)
            except Exception as error:
                log_failure("outbox.mark_deferred", error)

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


def log_failure(event: str, error: Exception) -> None:
    """A dependency away in a few words; anything else with its traceback."""
    if isinstance(error, DEPENDENCY_DOWN_ERRORS):
        log.warning(event, error=brief(error))
    else:
        log.warning(event, exc_info=error)
