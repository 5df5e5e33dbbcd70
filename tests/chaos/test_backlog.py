"""Scenario 14: a backlog queued while no worker runs, drained with the workers' memory bounded."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from shared.domain import Tier
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE
from tests.chaos.stack import rss_kb
from tests.harness.procs import children

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout(SIZE.backlog))]

SAMPLE_EVERY_S = 0.5
# The worker process holds at most 2 x (CONCURRENCY + 1) messages and a photo per job it holds; its size must
# not follow the backlog. Measured: ~110 MB at rest, ~125 MB busy (main process; engine pool apart).
MAX_MAIN_MB = 250
MAX_GROWTH_MB = 40  # from the end of warm-up (the first 10 % of the backlog) to the peak


@dataclass(frozen=True)
class Sample:
    at: float
    finished: int
    main_kb: int  # the worker process itself
    pool_kb: int  # its engine pool processes


async def _sample(chaos: Chaos, samples: list[Sample]) -> None:
    while True:
        finished = await chaos.finished()
        for worker in chaos.workers:
            pid = worker.pid
            main = rss_kb(pid) if pid is not None and worker.alive else None
            if pid is not None and main is not None:
                pool = sum(rss_kb(child) or 0 for child in children(pid))
                samples.append(Sample(time.time(), finished, main, pool))
        await asyncio.sleep(SAMPLE_EVERY_S)


async def test_backlog_drains_with_bounded_memory(chaos: Chaos, backlog_jobs: int) -> None:
    """14. A 2,000-job backlog drained with worker memory bounded."""
    # The whole backlog in the broker, as many owners' backlogs would put it there: one owner's alone
    # would mostly wait in PostgreSQL under fair share (shared/fairshare.py), which the other scenarios keep on.
    chaos.stack.env["FAIR_SHARE_QUEUED"] = "0"
    await chaos.start(workers=0)
    chaos.submit(backlog_jobs)
    await chaos.accepted_at_least(backlog_jobs)
    await chaos.until("the backlog in the work queues", lambda: _queued(chaos, backlog_jobs), deadline_s=120)
    chaos.start_workers(2)
    chaos.fault_over("workers started on the backlog")
    samples: list[Sample] = []
    sampler = asyncio.create_task(_sample(chaos, samples))
    try:
        await chaos.drain(deadline_s=120 + 1.5 * backlog_jobs)
    finally:
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    result = await chaos.finish()
    warm = [s.main_kb for s in samples if s.finished <= result.accepted // 10] or [samples[0].main_kb]
    peak_main = max(s.main_kb for s in samples) / 1024
    peak_pool = max(s.pool_kb for s in samples) / 1024
    growth = peak_main - max(warm) / 1024
    memory = {"peak_main": round(peak_main), "growth": round(growth), "peak_pool": round(peak_pool)}
    chaos.result.notes["memory_mb"] = memory
    chaos.expect(peak_main <= MAX_MAIN_MB, f"worker RSS peaked at {peak_main:.0f} MB (bound {MAX_MAIN_MB} MB)")
    chaos.expect(growth <= MAX_GROWTH_MB, f"worker RSS grew {growth:.0f} MB after warm-up (bound {MAX_GROWTH_MB})")
    rate = result.accepted / max(result.drain_s, 0.1)
    chaos.note(f"peak worker RSS {peak_main:.0f} MB (+{growth:.0f} after warm-up), pool {peak_pool:.0f} MB")
    chaos.note(f"{rate:.1f} jobs/s with 2 workers x 2")
    chaos.conclude()


async def _queued(chaos: Chaos, count: int) -> bool:
    states = await chaos.probe.try_states([chaos.topology.work_queue(tier) for tier in Tier])
    return states is not None and sum(state.messages for state in states) >= count
