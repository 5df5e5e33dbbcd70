"""Following a batch as its jobs move: PostgreSQL's notification, one LISTEN connection per process.

Migration 0009 notifies `luster_batch_changed` with the batch's id whenever one of its jobs changes
status. The watch is the job watch (shared/jobwatch.py) on that channel: a follower registers before it
reads, holds no connection while it waits, and is woken to read again whenever the connection comes
back (notifications sent while it was down are lost) and when the process stops.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime

from shared.domain import TERMINAL_STATUSES, JobStatus
from shared.jobs import Job
from shared.jobwatch import JobWatch

CHANNEL = "luster_batch_changed"
NAME = "luster-batchwatch"  # its application_name, to find it in pg_stat_activity


def batch_watch(dsn: str) -> JobWatch:
    """The watch of every batch this process follows."""
    return JobWatch(dsn, channel=CHANNEL, name=NAME)


def finished(jobs: list[Job]) -> bool:
    return bool(jobs) and all(job.status in TERMINAL_STATUSES for job in jobs)


async def follow(
    watch: JobWatch, batch_id: uuid.UUID, load: Callable[[], Awaitable[list[Job]]], *, idle_s: float
) -> AsyncGenerator[list[Job], None]:
    """Every job of the batch, then those that changed, each time some did; `[]` after `idle_s` seconds
    without a change (a keepalive, with no query). Ends after the change that finished the last job,
    or when the process stops.

    A job counts as changed when its status or `updated_at` differs from what was last yielded, so a
    wake for nothing (a reconnect) yields nothing, and a job that moved twice between reads once.
    """
    seen: dict[uuid.UUID, tuple[JobStatus, datetime]] = {}
    with watch.watching(batch_id) as woken:  # before the read: a change in between still wakes us
        while True:
            woken.clear()
            jobs = await load()
            changed = [job for job in jobs if seen.get(job.id) != (job.status, job.updated_at)]
            seen.update((job.id, (job.status, job.updated_at)) for job in changed)
            if changed:
                yield changed
            if finished(jobs) or not jobs:
                return
            while not woken.is_set():
                try:
                    async with asyncio.timeout(idle_s):
                        await woken.wait()
                except TimeoutError:
                    yield []
            if watch.closing.is_set():
                return
