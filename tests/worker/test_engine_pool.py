"""The engine's processes are up, with the pipeline loaded, before the worker takes its first job."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from concurrent.futures import Executor
from pathlib import Path

import pytest

from services.worker.engines.pool import start_pool
from services.worker.runner import worker_context
from services.worker.settings import WorkerSettings
from shared.errors import DependencyUnavailable
from tests.harness.poll import poll
from tests.harness.procs import alive, children

# Asked with a builtin, so that asking imports nothing of Luster's into the process asked. The pause keeps
# a process busy, so that each question of a batch reaches a process of its own.
_WHAT_IT_HAS = (
    "(__import__('time').sleep(1.0), __import__('os').getpid(), "
    "'services.worker.engines.local' in __import__('sys').modules)[1:]"
)


def _assert_each_warm(pool: Executor, processes: int) -> None:
    """`processes` processes answer, each from a pid of its own, that the pipeline is loaded."""
    futures = [pool.submit(eval, _WHAT_IT_HAS) for _ in range(processes)]
    answers: list[tuple[int, bool]] = [future.result(timeout=60) for future in futures]
    assert len({pid for pid, _ in answers}) == processes, answers
    assert all(loaded for _, loaded in answers), answers


async def test_every_process_is_started_and_has_the_pipeline_loaded() -> None:
    pool = await start_pool(2, within=60)
    try:
        _assert_each_warm(pool, 2)
    finally:
        pool.shutdown(wait=True)


async def test_a_pool_that_does_not_start_in_time_is_an_error() -> None:
    with pytest.raises(
        DependencyUnavailable, match=re.escape("the engine's processes (1) did not all start within 0.001 s")
    ):
        await start_pool(1, within=0.001)


# A worker in miniature: its pool started and warmed, then nothing until it is killed.
_WORKER = """
import asyncio
from services.worker.engines.pool import start_pool

async def main() -> None:
    pool = await start_pool(2, within=60)
    print("warm", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_processes_of_a_killed_worker_exit_with_it(tmp_path: Path) -> None:
    # Its output to a file, not a pipe: its processes inherit it, and a pipe they held open would keep
    # asyncio waiting for the worker's end as long as they live.
    said = tmp_path / "worker.out"
    with said.open("wb") as output:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, cwd=Path(__file__).parents[2], stdout=output
        )

    async def warm() -> bool:
        return said.read_bytes() == b"warm\n"

    try:
        await poll(warm, within=60, what="the worker's pool to be warm")
        # The two engine processes and multiprocessing's resource tracker.
        started = children(worker.pid)
        assert len(started) == 3, started
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()

    async def all_gone() -> bool:
        return not any(alive(pid) for pid in started)

    try:
        await poll(all_gone, within=30, what=lambda: f"the killed worker's processes to exit: {started}")
    finally:
        for pid in filter(alive, started):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.integration
async def test_the_worker_warms_its_engine_before_it_consumes(worker_settings: WorkerSettings) -> None:
    async with worker_context(worker_settings.model_copy(update={"concurrency": 2})) as ctx:
        _assert_each_warm(ctx.executor, 2)
