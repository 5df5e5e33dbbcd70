"""Scenarios 10-11: an engine that hangs, and one that fails transiently 30 % of the time."""

from __future__ import annotations

import pytest

from services.worker.engines.faulty import INJECTED_CODE
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout() + 600)]

TIMEOUT_CODE = "engine_timeout"


async def test_engine_hangs(chaos: Chaos, jobs: int) -> None:
    """10. An engine that hangs (the timeout fires, the job retries or fails cleanly)."""
    await chaos.start(workers=2, worker_env={"LUSTER_FAULTS": "engine_hang:0.3", "JOB_TIMEOUT": "2"})
    chaos.submit(jobs, over_s=chaos.size.scaled(3, 20))
    await chaos.drain()
    dead = await chaos.probe.take_all(chaos.topology.dead_letter_queue)
    result = await chaos.finish()
    timeouts = await chaos.query(
        "SELECT count(*) FROM job_events WHERE details->>'error_code' = $1 AND type = 'job.retrying'", TIMEOUT_CODE
    )
    codes = await chaos.pool.fetch("SELECT error_code, count(*) AS n FROM jobs WHERE status = 'failed' GROUP BY 1")
    chaos.expect(timeouts > 0, "the engine never hung long enough for the timeout to fire")
    chaos.expect(all(r["error_code"] == TIMEOUT_CODE for r in codes), f"failures other than timeouts: {codes}")
    # A job failed after its last attempt has its message dead-lettered with the reason, once.
    chaos.expect(len(dead) == result.failed, f"{len(dead)} dead letters for {result.failed} failed jobs")
    chaos.note(f"{timeouts} timeouts retried, {result.failed} jobs failed after 3 attempts")
    chaos.conclude()


async def test_engine_transient_errors(chaos: Chaos, jobs: int) -> None:
    """11. An engine with transient errors 30 % of the time (every job still succeeds; attempts recorded)."""
    # 0.3 ** 10: one job in 170,000 would exhaust its attempts.
    env = {"LUSTER_FAULTS": "engine_transient:0.3", "MAX_ATTEMPTS": "10"}
    await chaos.start(workers=2, worker_env=env)
    chaos.submit(jobs, over_s=chaos.size.scaled(3, 20))
    await chaos.drain()
    result = await chaos.finish()
    miscounted = await chaos.query(
        """
        SELECT count(*) FROM jobs j WHERE attempts <> (
            SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.type = 'job.started')
        OR attempts <> 1 + (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.type = 'job.retrying')
        """
    )
    injected = await chaos.query(
        "SELECT count(*) FROM job_events WHERE type = 'job.retrying' AND details->>'error_code' = $1", INJECTED_CODE
    )
    most = await chaos.query("SELECT max(attempts) FROM jobs")
    chaos.expect(result.succeeded == result.accepted, f"{result.accepted - result.succeeded} jobs did not succeed")
    chaos.expect(miscounted == 0, f"{miscounted} jobs whose attempts disagree with their history")
    chaos.expect(injected > 0, "the engine never failed")
    chaos.note(f"{injected} transient errors retried, up to {most} attempts per job")
    chaos.conclude()
