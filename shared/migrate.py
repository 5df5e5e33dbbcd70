"""`python -m shared.migrate`: create the database when missing and bring its schema to head, one runner at a time."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from shared.db import ensure_database
from shared.settings import BaseServiceSettings, load_settings

MIGRATIONS = Path(__file__).with_name("migrations")
# Every release of every service runs this as its pre-deploy step, so two may start at once; this key
# (b"luster:m" as a bigint) names the one session-level advisory lock they queue on, per database.
MIGRATION_LOCK = 0x6C75_7374_6572_3A6D
# How often a runner that found the lock taken tries again. It waits between statements, never inside one:
# a session blocked in pg_advisory_lock holds a snapshot, and a migration building an index CONCURRENTLY
# waits for every older snapshot in its database, so the runner holding the lock would wait on the runner
# waiting for it, a cycle through one process's two connections that PostgreSQL cannot see.
LOCK_RETRY_S = 0.5


def configured_url() -> str:
    """DATABASE_URL as the services read it: what the alembic CLI migrates when alembic.ini names no URL."""
    return str(load_settings(BaseServiceSettings).database_url.get_secret_value())


def alembic_config(dsn: str) -> Config:
    """`sqlalchemy.url` holds asyncpg's own DSN, which env.py hands to asyncpg: SQLAlchemy's URL parser
    takes one host only, and a DATABASE_URL may name a primary and its standbys."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic's config is ConfigParser-based, so a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", dsn.replace("%", "%%"))
    return config


async def _ensure_database(dsn: str) -> None:
    # Two first runs against a missing database both try CREATE DATABASE; the loser's is no failure.
    with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        await ensure_database(dsn)


async def _upgrade_under_lock(dsn: str) -> None:
    await _ensure_database(dsn)
    # A connection of its own holds the lock: a session lock dies with its session, so a runner killed
    # mid-migration never leaves the next one waiting forever (its transaction rolls back too).
    connection = await asyncpg.connect(dsn)
    try:
        for attempt in itertools.count():
            if await connection.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK):
                break
            if attempt == 0:
                print("luster: another migration is running; waiting for it to finish", flush=True)
            await asyncio.sleep(LOCK_RETRY_S)
        # Alembic's env.py runs its own event loop, so the upgrade gets a thread while this loop keeps the lock.
        await asyncio.to_thread(command.upgrade, alembic_config(dsn), "head")
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    finally:
        await connection.close()


def migrate(dsn: str) -> None:
    """Blocking: call from a thread when an event loop is already running."""
    asyncio.run(_upgrade_under_lock(dsn))


def main() -> None:
    settings = load_settings(BaseServiceSettings)
    url = settings.database_url.get_secret_value()
    migrate(str(url))
    print(f"luster: database {(url.path or '/').lstrip('/')} is at the schema head")


if __name__ == "__main__":
    main()
