"""Group commit: state changes that arrive while one transaction is open share it, and its COMMIT.

A worker's state change is a short transaction: a pooled connection, BEGIN, one UPDATE with its history
row, its outbox rows, COMMIT and its WAL flush. Most of that cost is the transaction around the UPDATE,
and a worker running eight jobs has several changes under way at any moment. Changes that arrive while a
group is open join it and run one after another on its connection, each in its caller's task (so its
statements join its caller's trace and log context); when the last of them is done, their outbox rows
are written in one INSERT and one COMMIT makes them all durable; each change's messages are then published
on its behalf. A change that arrives alone is a transaction of its own, with no wait for company: a group
forms only from changes that are already under way together.

A group is all or nothing, and one change's failure must not be another's. When anything fails before
the COMMIT has succeeded (a change's statement, a deadlock with another worker's group, the COMMIT
refused by the server), nothing of the group was committed, and each of its changes runs again alone; a
change that fails alone raises as it would have. A connection lost during the COMMIT leaves the outcome
unknown: that is raised to every change of the group, as a lone transaction raises it (a job's message is
then redelivered, and the redelivery finds the job where the commit left it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from shared.broker import Broker
from shared.db import DATABASE_DOWN_ERRORS, Connection
from shared.messages import OutgoingMessage
from shared.outbox import Outbox, Publisher, stage_many

T = TypeVar("T")
Change = Callable[[Outbox], Awaitable[T]]


class DeferredOutbox(Outbox):
    """An outbox whose messages are written just before the group commits, with the other changes' messages."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.pending: list[OutgoingMessage] = []

    async def stage(self, message: OutgoingMessage) -> None:
        self.pending.append(message)


class _NotCommitted(Exception):
    """Another change of the group failed, so the group rolled back."""


class _Group:
    """One transaction, shared by the changes that join it while it is open (at most `largest` of them)."""

    def __init__(self, pool: asyncpg.Pool, *, largest: int) -> None:
        self._pool = pool
        self._largest = largest
        self.members = 0
        self._unfinished = 0  # joined, and their change not yet done
        self._turn = asyncio.Lock()
        self._connection: PoolConnectionProxy[asyncpg.Record] | None = None
        self._transaction: Transaction | None = None
        self._boxes: list[DeferredOutbox] = []
        self._failed = False
        self._ending: asyncio.Task[None] | None = None
        self._committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Nobody may be left to hear of a failure (every change failed, and raised): not a stray warning.
        self._committed.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Set when the COMMIT failed in a way that may have committed all the same.
        self.outcome_unknown = False

    @property
    def open(self) -> bool:
        return self.members < self._largest and self._ending is None

    async def take_part(self, change: Change[T]) -> tuple[DeferredOutbox, T]:
        """Run `change` in the group's transaction, then wait for the group's COMMIT."""
        self.members += 1
        self._unfinished += 1
        try:
            async with self._turn:
                if self._failed:
                    raise _NotCommitted
                try:
                    box = DeferredOutbox(await self._begun())
                    result = await change(box)
                except BaseException:
                    self._failed = True
                    raise
                self._boxes.append(box)
        finally:
            self._unfinished -= 1
            if self._unfinished == 0:
                # Its own task: a caller cancelled now must not take the others' COMMIT with it.
                self._ending = asyncio.create_task(self._end())
        await asyncio.shield(self._committed)
        return box, result

    async def _begun(self) -> Connection:
        if self._connection is None:
            self._connection = await self._pool.acquire()
            self._transaction = self._connection.transaction()
            await self._transaction.start()
        return self._connection

    async def _end(self) -> None:
        try:
            if self._failed:
                raise _NotCommitted
            await self._write_outboxes()
            await self._commit()
        except BaseException as error:
            if not self._committed.done():
                self._committed.set_exception(error)
            await self._roll_back()
        else:
            self._committed.set_result(None)
        finally:
            if self._connection is not None:
                await self._pool.release(self._connection)

    async def _write_outboxes(self) -> None:
        messages = [message for box in self._boxes for message in box.pending]
        if not messages:
            return
        assert self._connection is not None
        staged = iter(await stage_many(self._connection, messages))
        for box in self._boxes:
            # Its own messages first, then what it released from holding, as a transaction of its own orders them.
            box.staged[:0] = [next(staged) for _ in box.pending]

    async def _commit(self) -> None:
        if self._transaction is None:
            return
        try:
            await self._transaction.commit()
        except BaseException as error:
            # The server's refusal rolled the group back; a connection lost (or shut down) may have committed it.
            self.outcome_unknown = not isinstance(error, asyncpg.PostgresError) or isinstance(
                error, DATABASE_DOWN_ERRORS
            )
            raise

    async def _roll_back(self) -> None:
        if self._transaction is not None and not self.outcome_unknown:
            # A broken connection cannot roll back; releasing it closes it, which rolls back all the same.
            with contextlib.suppress(Exception):
                await self._transaction.rollback()


class GroupCommit:
    """Where a process's state changes go to share transactions; one per pool.

    A change's messages are published after its COMMIT without holding its caller (a `Publisher`): the
    caller's next step (a job's engine run, its delivery's ack) does not wait for the broker's confirms.
    `settle` waits for the publishes under way, before the broker closes.
    """

    def __init__(self, pool: asyncpg.Pool, broker: Broker, *, largest: int) -> None:
        self._pool = pool
        self._largest = largest
        self._open: _Group | None = None
        self._publisher = Publisher(pool, broker)

    async def run(self, change: Change[T]) -> T:
        """`change` in a transaction (shared, or its own); its staged messages are published after the COMMIT."""
        group = self._join()
        try:
            box, result = await group.take_part(change)
        except Exception:
            # Alone, the failure is the change's own; in company, it may be another's.
            if group.members == 1 or group.outcome_unknown:
                raise
            box, result = await _Group(self._pool, largest=1).take_part(change)
        self._publisher.publish(box.staged)
        return result

    async def settle(self) -> None:
        """Wait for the publishes under way (each gives up within the outbox's publish timeout)."""
        await self._publisher.settle()

    def _join(self) -> _Group:
        if self._open is None or not self._open.open:
            self._open = _Group(self._pool, largest=self._largest)
        return self._open
