"""Scenarios 7-8: PostgreSQL restarted while workers finish jobs, and down under an ingest load.

Both stop the shared database server, so each holds the chaos lock (servers.exclusive) for its whole run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.chaos import servers
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE
from tests.chaos.verdict import half_written
from tests.conftest import DATABASE_URL

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout() + 900)]

Exclusive = Callable[[], AbstractAsyncContextManager[None]]


async def test_postgres_restarted_while_workers_finish_jobs(chaos: Chaos, jobs: int, exclusive: Exclusive) -> None:
    """7. PostgreSQL restarted while workers finish jobs."""
    async with exclusive():
        await chaos.start(workers=2)
        chaos.submit(jobs, over_s=chaos.size.scaled(4, 30))
        restarts = (1, 2) if jobs >= 100 else (1,)
        for n in restarts:
            await chaos.finished_at_least(jobs * n // (len(restarts) + 1))
            chaos.fault("pg_ctlcluster restart")
            await servers.restart_postgres()
            chaos.fault_over("postgresql started", at=await servers.postgres_started_at(DATABASE_URL))
        await chaos.drain()
    await chaos.finish()
    swept = await chaos.query("SELECT count(*) FROM job_events WHERE details->>'error_code' = 'worker_lost'")
    chaos.note(f"{len(restarts)} restarts, {chaos.result.retries} retries ({swept} by the sweeper)")
    chaos.conclude()


async def test_postgres_down_at_post(chaos: Chaos, jobs: int, exclusive: Exclusive) -> None:
    """8. PostgreSQL down at POST /jobs (503, nothing half-written)."""
    async with exclusive():
        await chaos.start(workers=2)
        # Half the requests carry the photo itself: an upload is the longest write a POST makes.
        chaos.submit(jobs, over_s=chaos.size.scaled(12, 40), file_share=0.5)
        await chaos.accepted_at_least(jobs // 4)
        chaos.fault("pg_ctlcluster stop")
        await servers.stop_postgres()
        await asyncio.sleep(chaos.size.scaled(4, 10))
        await servers.start_postgres()
        chaos.fault_over("postgresql started", at=await servers.postgres_started_at(DATABASE_URL))
        await chaos.drain()
    await chaos.finish()
    ledger = chaos.client.ledger
    chaos.expect(ledger.count("503") > 0, "no client saw a 503 while the database was down")
    unexpected = {outcome: n for outcome, n in ledger.outcomes.items() if outcome not in ("202", "503")}
    chaos.expect(not unexpected, f"answers other than 202 and 503: {unexpected}")
    leftovers = await half_written(chaos.pool, chaos.uploads_dir, keep_asset=chaos.client.asset_id)
    chaos.result.notes["half_written"] = leftovers
    chaos.expect(not any(leftovers.values()), f"half-written: {leftovers}")
    chaos.note(f"{ledger.count('503')} answered 503, {ledger.count('connection_error')} connection errors")
    chaos.conclude()
