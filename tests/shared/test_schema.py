"""The schema at head: no index that another one already serves, nor an entry that enforces nothing (each
costs on every write of its table)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared import jobs
from shared.domain import Style, Tier
from shared.migrate import migrate
from tests.conftest import DATABASE_URL, TEST_OWNER, record_asset
from tests.deploy.launch import scratch_database
from tests.system.processes import ROOT

pytestmark = pytest.mark.integration

# Plain btree indexes of the public schema: their table, key columns in order, and partial predicate.
# Unique ones are constraints, not access paths, and an expression index has no columns to compare.
_INDEXES = """
SELECT index.relname AS name, index_table.relname AS table_name,
       array(SELECT attname FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, place)
             JOIN pg_attribute ON attrelid = i.indrelid AND pg_attribute.attnum = k.attnum
             ORDER BY place) AS columns,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       i.indisunique AS is_unique, i.indexprs IS NOT NULL AS has_expressions
FROM pg_index i
JOIN pg_class index ON index.oid = i.indexrelid
JOIN pg_class index_table ON index_table.oid = i.indrelid
JOIN pg_namespace ON pg_namespace.oid = index_table.relnamespace
JOIN pg_am ON pg_am.oid = index.relam
WHERE nspname = 'public' AND amname = 'btree'
"""


async def _indexes(dsn: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(_INDEXES))
    finally:
        await connection.close()


def _served_by(narrow: asyncpg.Record, wide: asyncpg.Record) -> bool:
    """Every scan `narrow` serves, `wide` serves too: same rows, and its columns begin with narrow's."""
    columns = list(narrow["columns"])
    return (
        narrow["name"] != wide["name"]
        and narrow["table_name"] == wide["table_name"]
        and narrow["predicate"] == wide["predicate"]
        and not narrow["is_unique"]
        and not narrow["has_expressions"]
        and list(wide["columns"])[: len(columns)] == columns
    )


async def test_no_index_is_served_by_another(database_url: str) -> None:
    indexes = await _indexes(database_url)

    redundant = [f"{a['name']} (served by {b['name']})" for a in indexes for b in indexes if _served_by(a, b)]

    assert len(indexes) > 20  # the query found the schema's indexes at all
    assert redundant == []


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    async with scratch_database(DATABASE_URL, "schema") as dsn:
        yield dsn


def _alembic(dsn: str, *args: str) -> None:
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


async def test_the_redundant_job_indexes_go_and_come_back_with_their_migration(fresh_dsn: str) -> None:
    await asyncio.to_thread(migrate, fresh_dsn)
    assert {"idx_jobs_status", "idx_jobs_created_at"}.isdisjoint(r["name"] for r in await _indexes(fresh_dsn))

    await asyncio.to_thread(_alembic, fresh_dsn, "downgrade", "0010")
    restored = {r["name"]: list(r["columns"]) for r in await _indexes(fresh_dsn)}
    assert restored["idx_jobs_status"] == ["status"]
    assert restored["idx_jobs_created_at"] == ["created_at"]

    await asyncio.to_thread(_alembic, fresh_dsn, "upgrade", "head")
    assert {"idx_jobs_status", "idx_jobs_created_at"}.isdisjoint(r["name"] for r in await _indexes(fresh_dsn))


_IDEMPOTENCY_INDEX_SIZE = "SELECT pg_relation_size('idx_jobs_owner_idempotency_key')"
_BY_KEY = "SELECT * FROM jobs WHERE owner = $1 AND idempotency_key = $2"  # shared.idempotency.find's
_IDEMPOTENCY_CONSTRAINT = "SELECT count(*) FROM pg_constraint WHERE conname = 'jobs_owner_idempotency_key_key'"


async def test_only_jobs_with_a_key_enter_the_idempotency_index_and_a_key_stays_unique(pool: asyncpg.Pool) -> None:
    empty = await pool.fetchval(_IDEMPOTENCY_INDEX_SIZE)  # its metapage alone: the table was just emptied
    asset = await record_asset(pool)
    for _ in range(50):
        assert await jobs.insert_job(pool, jobs.NewJob(asset.id, "no key", Tier.FREE, Style.DEFAULT, TEST_OWNER))
    assert await pool.fetchval(_IDEMPOTENCY_INDEX_SIZE) == empty

    keyed = jobs.NewJob(asset.id, "keyed", Tier.FREE, Style.DEFAULT, TEST_OWNER, idempotency_key="listing-17")
    assert await jobs.insert_job(pool, keyed)
    assert await pool.fetchval(_IDEMPOTENCY_INDEX_SIZE) > empty
    with pytest.raises(asyncpg.UniqueViolationError):
        await jobs.insert_job(pool, keyed)
    async with pool.acquire() as connection:
        # A lookup by owner and key plans on it as a generic plan too (the key a parameter, `=` implies NOT NULL).
        await connection.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        await connection.execute("PREPARE by_key(text, text) AS " + _BY_KEY)
        plan = "\n".join(row[0] for row in await connection.fetch("EXPLAIN EXECUTE by_key('owner', 'listing-17')"))
        await connection.execute("DEALLOCATE by_key; RESET plan_cache_mode; RESET enable_seqscan")
    assert "idx_jobs_owner_idempotency_key" in plan
    # The key is the owner's: another owner's job may carry the same.
    theirs = await record_asset(pool, owner="another-owner")
    assert await jobs.insert_job(
        pool, jobs.NewJob(theirs.id, "keyed", Tier.FREE, Style.DEFAULT, "another-owner", idempotency_key="listing-17")
    )


async def test_the_idempotency_constraint_comes_back_with_its_migration(fresh_dsn: str) -> None:
    await asyncio.to_thread(migrate, fresh_dsn)
    connection = await asyncpg.connect(fresh_dsn)
    try:
        assert await connection.fetchval(_IDEMPOTENCY_CONSTRAINT) == 0

        await asyncio.to_thread(_alembic, fresh_dsn, "downgrade", "0011")
        assert await connection.fetchval(_IDEMPOTENCY_CONSTRAINT) == 1
        assert "idx_jobs_owner_idempotency_key" not in {r["name"] for r in await connection.fetch(_INDEXES)}

        await asyncio.to_thread(_alembic, fresh_dsn, "upgrade", "head")
        assert await connection.fetchval(_IDEMPOTENCY_CONSTRAINT) == 0
        assert await connection.fetchval(_IDEMPOTENCY_INDEX_SIZE) > 0
    finally:
        await connection.close()
