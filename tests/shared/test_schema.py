"""The schema at head: no index that another one already serves (each costs on every write of its table)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.migrate import migrate
from tests.conftest import DATABASE_URL
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
