"""Waking whoever waits on a job when it finishes: one LISTEN connection per process.

PostgreSQL notifies `luster_job_finished` with the job's id when it commits a job's move into
succeeded, failed or canceled (migration 0007). A waiter registers before it reads the job, so a
notification cannot slip between its read and its wait; while it waits it holds no pool connection and
runs no query. Notifications sent while the connection was down are lost, so every waiter is woken to
read its job again whenever the connection is (re)established.

The same watch serves any channel whose payload is an id (shared/batchwatch.py follows batches). At
shutdown `release` wakes every waiter with `closing` set, so long waits (event streams) end promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Iterator

import asyncpg
import structlog

from shared.db import STARTING_ERRORS, Connection
from shared.telemetry.tracing import untraced

log = structlog.get_logger()

CHANNEL = "luster_job_finished"
NAME = "luster-jobwatch"  # its application_name, to find it in pg_stat_activity
_RETRY_S = (0.5, 1.0, 2.0, 5.0)
# A server not up yet, a connection refused or lost, and any error PostgreSQL answers (a dropped database).
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (*STARTING_ERRORS, asyncpg.PostgresError)


class JobWatch:
    """Events per job id, set when that job finishes (or when the watch may have missed it)."""

    def __init__(self, dsn: str, *, channel: str = CHANNEL, name: str = NAME) -> None:
        self._dsn = dsn
        self.channel, self.name = channel, name
        self._waiters: defaultdict[uuid.UUID, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        self.closing = asyncio.Event()

    @property
    def waiting(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    @contextlib.contextmanager
    def watching(self, job_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set when the job finishes; register before reading the job, wait after."""
        changed = asyncio.Event()
        self._waiters[job_id].add(changed)
        try:
            yield changed
        finally:
            waiters = self._waiters[job_id]
            waiters.discard(changed)
            if not waiters:
                del self._waiters[job_id]

    def release(self) -> None:
        """The process is stopping: wake every waiter, with `closing` set, so none holds up the shutdown."""
        self.closing.set()
        self._wake_all()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_listening())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _keep_listening(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_until_lost()
                failures = 0
            except _LISTEN_ERRORS as error:
                log.warning("jobwatch.unavailable", channel=self.channel, error=repr(error))
            failures += 1
            await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S)) - 1])

    async def _listen_until_lost(self) -> None:
        lost = asyncio.Event()
        with untraced():  # one long-lived connection, not a trace
            connection = await asyncpg.connect(self._dsn, timeout=10, server_settings={"application_name": self.name})
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(self.channel, self._notified)
            self.listening.set()
            self._wake_all()  # whatever finished while nobody listened
            await lost.wait()
            log.warning("jobwatch.connection_lost", channel=self.channel)
        finally:
            self.listening.clear()
            with contextlib.suppress(*STARTING_ERRORS):
                await connection.close(timeout=2)

    def _notified(self, connection: Connection, pid: int, channel: str, payload: object) -> None:
        try:
            job_id = uuid.UUID(str(payload))
        except ValueError:
            return  # not ours: anyone may NOTIFY on a channel
        for changed in self._waiters.get(job_id, ()):
            changed.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for changed in waiters:
                changed.set()
