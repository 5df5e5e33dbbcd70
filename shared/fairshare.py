"""Fair share between owners: at most `cap` of one owner's jobs wait in each tier's work queue at a time.

The work queues are first in, first out, so one owner's backlog of a thousand photos would stand ahead
of every other owner's first photo. A job over its owner's share is accepted and committed like any
other (`queued`, its history, its announcement in the outbox) but *held*: its announcement stays in the
outbox, unpublished, until one of the owner's jobs leaves the queues. A worker that starts a job, and
the api that cancels one, release the owner's oldest held job in the same transaction; the relay's
pass releases what is left with room (a job that left `queued` another way, a cap raised).

What waits in a tier's queue is then at most `cap` per owner with work waiting, so a newcomer's first
job starts after that many jobs of each such owner, whatever their backlogs; tiers are shared apart,
so an owner's premium job never waits behind its own free backlog. It does not limit how many
of an owner's jobs run at once: every start makes room for the next. One owner's submissions decide
whether they are held one at a time, under the owner's advisory lock (migration 0010), so a backlog
sent many at once does not pass its share; other owners never wait. 0 disables holding.
"""

from __future__ import annotations

import asyncpg

from shared.db import Connection
from shared.jobs import Job
from shared.outbox import Staged, message_of

# Oldest first; SKIP LOCKED lets two releasers of one owner pick different jobs.
_RELEASE_OWNER = """
WITH room AS (
    SELECT greatest($3::int - count(*), 0) AS free
    FROM jobs WHERE owner = $1 AND tier = $2 AND status = 'queued' AND NOT held
), next AS (
    SELECT id FROM jobs WHERE owner = $1 AND tier = $2 AND status = 'queued' AND held
    ORDER BY created_at, id LIMIT (SELECT free FROM room)
    FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE jobs SET held = false FROM next WHERE jobs.id = next.id RETURNING jobs.id
)
UPDATE outbox SET held_job = NULL FROM released WHERE outbox.held_job = released.id RETURNING outbox.*
"""

# A held job that left `queued` without its release (canceled, say) still announces itself, late.
_UNHOLD = """
WITH unheld AS (UPDATE jobs SET held = false WHERE id = $1 AND held RETURNING id)
UPDATE outbox SET held_job = NULL FROM unheld WHERE outbox.held_job = unheld.id RETURNING outbox.*
"""

_RELEASE_ALL = """
WITH shares AS (
    SELECT owner, tier, greatest($1::int - count(*) FILTER (WHERE NOT held), 0) AS free
    FROM jobs
    WHERE status = 'queued' AND (owner, tier) IN (SELECT owner, tier FROM jobs WHERE held AND status = 'queued')
    GROUP BY owner, tier
), ranked AS (
    SELECT id, free, row_number() OVER (PARTITION BY owner, tier ORDER BY created_at, id) AS place
    FROM jobs JOIN shares USING (owner, tier) WHERE status = 'queued' AND held
), next AS (
    SELECT jobs.id FROM jobs JOIN ranked USING (id) WHERE ranked.place <= ranked.free
    FOR UPDATE OF jobs SKIP LOCKED
), released AS (
    UPDATE jobs SET held = false FROM next WHERE jobs.id = next.id AND jobs.held RETURNING jobs.id
), stranded AS (
    UPDATE jobs SET held = false WHERE held AND status <> 'queued' RETURNING id
)
UPDATE outbox SET held_job = NULL
WHERE held_job IN (SELECT id FROM released UNION ALL SELECT id FROM stranded)
RETURNING outbox.id
"""


def _staged(records: list[asyncpg.Record]) -> list[Staged]:
    return [Staged(int(record["id"]), message_of(record)) for record in records]


async def left_queue(connection: Connection, job: Job, *, cap: int) -> list[Staged]:
    """In the transaction that moved `job` out of `queued`: the announcements to publish once it commits
    (the relay publishes them otherwise). Its own, if it was still held; else its place in the queues
    goes to its owner's oldest held job of its tier."""
    if job.held:
        return _staged(await connection.fetch(_UNHOLD, job.id))
    if cap <= 0:
        return []
    return _staged(await connection.fetch(_RELEASE_OWNER, job.owner, job.tier.value, cap))


async def release_with_room(pool: asyncpg.Pool, *, cap: int) -> int:
    """Release every owner's held jobs that have room (all of them when `cap` is 0: holding is off),
    and any held job that is no longer queued; the relay publishes them. How many were released."""
    async with pool.acquire() as connection, connection.transaction():
        # Planned for the jobs there are now, every time: a plan PostgreSQL cached while `jobs` was nearly
        # empty (a new database, one just emptied) nests loops over what are soon thousands of held jobs, and
        # such a pass took 20 s against 6 ms planned afresh (seen in bench/tracing_overhead.py's runs).
        await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        released = await connection.fetch(_RELEASE_ALL, cap if cap > 0 else 2**31 - 1)
    return len(released)
