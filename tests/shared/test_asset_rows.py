"""The asset row: recorded alike either way, its commit waiting for the WAL only when no job's commit follows."""

from __future__ import annotations

import asyncpg
import pytest

from shared.assets import get_asset
from tests.conftest import TEST_OWNER, record_asset


@pytest.mark.parametrize(("job_follows", "commit_waits"), [(False, "on"), (True, "off")])
async def test_an_asset_row_is_recorded_and_its_commit_waits_unless_a_job_follows(
    pool: asyncpg.Pool, job_follows: bool, commit_waits: str
) -> None:
    async with pool.acquire() as connection:
        async with connection.transaction():
            asset = await record_asset(connection, job_follows=job_follows)
            # What the statement set lasts for its transaction, whose COMMIT it decides.
            assert await connection.fetchval("SHOW synchronous_commit") == commit_waits

        # Nothing outlasts it: the connection goes back to the pool waiting for its commits again.
        assert await connection.fetchval("SHOW synchronous_commit") == "on"

    assert asset == await get_asset(pool, asset.id, owner=TEST_OWNER)
    assert (asset.size_bytes, asset.width, asset.height, asset.owner) == (1234, 400, 300, TEST_OWNER)
