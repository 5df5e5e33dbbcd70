"""PostgreSQL access: the pool every service owns, creating the database, and the schema check."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from shared.retry import retry_until_ready
from shared.telemetry.tracing import untraced

log = structlog.get_logger()

# A connection as repositories take it: a plain one or one checked out of the pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
# Anything a single statement can run on, including the pool itself.
Queryable: TypeAlias = "Connection | asyncpg.Pool[asyncpg.Record]"


class LusterConnection(asyncpg.Connection):
    """Released to the pool without a reset query.

    asyncpg's reset (UNLISTEN, RESET ALL, advisory unlocks, CLOSE ALL) costs a round trip per
    release; Luster uses none of those features, and open transactions are still rolled back.
    """

    def get_reset_query(self) -> str:
        return ""


# A CTE for a write whose loss in a database crash costs nothing (a rate counter, a mark the outbox relay
# would redo): its transaction commits without waiting for the WAL to reach disk, so the row locks it
# takes are not held for an fsync, and concurrent writers of one row stop queueing behind each other.
# `set_config(…, true)` lasts for the statement's own transaction; reference the CTE so it runs.
RELAXED_COMMIT = "relaxed_commit AS (SELECT set_config('synchronous_commit', 'off', true))"


# What "the database is down" looks like at an edge (HTTP answer, message handling), as opposed
# to a bug: connection refused or reset, a server shutting down, a pool that cannot hand out a connection,
# and during a failover no host that takes writes yet (DATABASE_URL's target_session_attrs=read-write,
# TargetServerAttributeNotMatched) or a write that reached a server which has just become a standby.
# asyncpg's InternalClientError family covers that host matching, and a pooled connection the server shut
# down as a statement began ("cannot switch to state 12; another operation (2) is in progress", seen once as
# a 500 in scenario 21's failover): no connection here is shared between tasks, so it means the server went.
DATABASE_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.InternalClientError,
    asyncpg.ReadOnlySQLTransactionError,
    TimeoutError,
)


# At start-up any socket error means "not up yet" (a name that does not resolve yet, a refused port).
STARTING_ERRORS: tuple[type[BaseException], ...] = (OSError, *DATABASE_DOWN_ERRORS)


async def wait_until_up(pool: asyncpg.Pool, *, give_up_after: float) -> bool:
    """Poll with backoff until the database answers again; False if it did not within the time."""
    deadline = asyncio.get_running_loop().time() + give_up_after
    delay = 0.5
    while not await ping(pool):
        if asyncio.get_running_loop().time() + delay > deadline:
            return False
        log.warning("database.waiting", retry_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
    return True


async def _init_connection(connection: Any) -> None:
    with untraced():
        await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, startup_timeout: float = 60.0
) -> asyncpg.Pool:
    """One pool per process, created once it answers; jsonb comes back as Python objects."""

    async def attempt() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            command_timeout=30,
            connection_class=LusterConnection,
        )

    return await retry_until_ready(attempt, what="postgresql", give_up_after=startup_timeout, retry_on=STARTING_ERRORS)


def split_database(dsn: str) -> tuple[str, str]:
    """The maintenance DSN (database `postgres`) and the name of the database `dsn` names.

    The database is the path after the last `/`, so a DSN of several hosts (`a:5432,b:5432`) splits alike.
    """
    head, _, tail = dsn.rpartition("/")
    name, sep, query = tail.partition("?")
    return f"{head}/postgres{sep}{query}", name or "postgres"


async def ensure_database(dsn: str) -> bool:
    """Create the database `dsn` names when it does not exist; True when it was created."""
    maintenance_dsn, name = split_database(dsn)
    connection = await asyncpg.connect(maintenance_dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        await connection.execute(f"CREATE DATABASE {quoted}")
        log.info("database.created", database=name)
        return True
    finally:
        await connection.close()


async def ping(pool: asyncpg.Pool) -> bool:
    try:
        with untraced():  # a probe every few seconds is not worth a trace each
            async with pool.acquire(timeout=2) as connection:
                return bool(await connection.fetchval("SELECT 1", timeout=2))
    except Exception:
        return False
