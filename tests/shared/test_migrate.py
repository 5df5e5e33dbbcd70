"""Migrations under the advisory lock: concurrent runs queue, and each leaves the schema at head."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from shared.db import ensure_database
from shared.migrate import MIGRATION_LOCK, alembic_config
from tests.conftest import DATABASE_URL
from tests.deploy.launch import scratch_database
from tests.system.processes import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    async with scratch_database(DATABASE_URL, "migrate") as dsn:
        yield dsn


def _start_migration(dsn: str) -> subprocess.Popen[str]:
    """`python -m shared.migrate` as a release's pre-deploy step runs it."""
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-m", "shared.migrate"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = await asyncio.to_thread(process.communicate, timeout=120)
    return process.returncode, output


async def _revision(dsn: str) -> str | None:
    connection = await asyncpg.connect(dsn)
    try:
        if await connection.fetchval("SELECT to_regclass('alembic_version')") is None:
            return None
        revision: str | None = await connection.fetchval("SELECT version_num FROM alembic_version")
        return revision
    finally:
        await connection.close()


def _head(dsn: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(dsn)).get_current_head()


WAITING = "luster: another migration is running; waiting for it to finish\n"


async def test_two_migrations_at_once_on_a_missing_database_both_succeed(fresh_dsn: str) -> None:
    first, second = _start_migration(fresh_dsn), _start_migration(fresh_dsn)

    results = await asyncio.gather(_finish(first), _finish(second))

    for code, output in results:
        assert code == 0, output
        assert "is at the schema head" in output
    assert await _revision(fresh_dsn) == _head(fresh_dsn)


async def test_a_migration_waits_while_another_holds_the_lock(fresh_dsn: str) -> None:
    await ensure_database(fresh_dsn)
    holder = await asyncpg.connect(fresh_dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        migration = _start_migration(fresh_dsn)
        assert migration.stdout is not None
        said = await asyncio.wait_for(asyncio.to_thread(migration.stdout.readline), timeout=60)
        assert said == WAITING, said + migration.communicate()[0]

        assert migration.poll() is None
        assert await _revision(fresh_dsn) is None  # not a table created while the lock is held elsewhere

        # What the holder may be doing meanwhile: building an index concurrently, which waits for every
        # older snapshot of the database. The waiting runner holds none between its tries, so it finishes.
        await holder.execute("CREATE TABLE probe (id integer)")
        await asyncio.wait_for(holder.execute("CREATE INDEX CONCURRENTLY probe_id ON probe (id)"), timeout=30)
        await holder.execute("DROP TABLE probe")

        await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        code, output = await _finish(migration)
    finally:
        await holder.close()

    assert code == 0, output
    assert await _revision(fresh_dsn) == _head(fresh_dsn)


async def test_a_migration_killed_holding_the_lock_does_not_block_the_next(fresh_dsn: str) -> None:
    await ensure_database(fresh_dsn)
    holder = await asyncpg.connect(fresh_dsn)
    await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    holder.terminate()  # as a pre-deploy container killed mid-run: the session, and with it the lock, ends

    code, output = await _finish(_start_migration(fresh_dsn))

    assert code == 0, output
    assert await _revision(fresh_dsn) == _head(fresh_dsn)


async def test_the_guides_alembic_upgrade_head_migrates_the_database_url(fresh_dsn: str) -> None:
    await ensure_database(fresh_dsn)  # the guide's command runs on a database that exists
    env = {**os.environ, "DATABASE_URL": fresh_dsn, "PYTHONPATH": str(ROOT)}

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert await _revision(fresh_dsn) == _head(fresh_dsn)
