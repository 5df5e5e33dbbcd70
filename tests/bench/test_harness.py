"""The benchmarks' harness: what every run starts from."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from bench import harness
from bench.harness import forget_jobs
from shared import jobs
from shared.domain import Style, Tier
from tests.conftest import TEST_OWNER, record_asset

pytestmark = pytest.mark.integration

TABLES = ("jobs", "job_events", "outbox", "assets")


async def test_a_run_starts_from_empty_tables_written_after_a_checkpoint(pool: asyncpg.Pool) -> None:
    asset_id = (await record_asset(pool)).id
    for _ in range(50):
        assert await jobs.insert_job(pool, jobs.NewJob(asset_id, "bench", Tier.FREE, Style.DEFAULT, TEST_OWNER))
    await pool.execute("DELETE FROM jobs")  # what a DELETE leaves on disk, with autovacuum off as on CI
    checkpoint_before = await pool.fetchval("SELECT checkpoint_lsn FROM pg_control_checkpoint()")

    await forget_jobs(pool, "assets")

    # Not a row, live or dead, for the next run to step over: the tables hold no page at all.
    for table in TABLES:
        assert await pool.fetchval("SELECT pg_relation_size($1::regclass)", table) == 0, table
    assert await pool.fetchval("SELECT checkpoint_lsn FROM pg_control_checkpoint()") > checkpoint_before


async def test_forgetting_the_assets_forgets_their_photos_and_only_with_them(
    pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A make bench run stored some 5,000 photos of 2 MB that every run after it kept."""
    monkeypatch.setattr(harness, "UPLOADS", tmp_path)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"photo")

    await forget_jobs(pool)
    assert _names(tmp_path) == ["a.jpg"]

    await forget_jobs(pool, "assets")
    assert _names(tmp_path) == []  # the directory stays: the APIs writing there are still running


def _names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())
