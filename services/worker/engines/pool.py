"""The engine's process pool, each process started and warmed before the worker takes its first job.

Processes, not threads: image work is CPU-bound, and a hung engine must not hold the GIL. A pool of the
spawn kind starts its processes only as work arrives, and a new process spends about half a second on
importing numpy and Pillow and on its first decode; left to the first jobs, a fresh replica (a deploy, a
scale-out on queue depth) would make each of its first photos wait for that.

A worker that is killed (SIGKILL, the OOM killer) cannot stop its processes, and they would not notice on
their own: each waits on a call queue whose writing end it holds too. Each watches for its parent instead.
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Semaphore

from PIL import Image

from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from shared.domain import Style, Tier
from shared.errors import DependencyUnavailable


def _sample_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (120, 140, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


ORPHAN_CHECK_S = 1.0


def _exit_once_orphaned(worker: int) -> None:
    # Not PR_SET_PDEATHSIG: it fires when the parent's *thread* that started the process ends, and the pool
    # starts processes from whichever thread submits. An orphan is adopted by another parent, whatever killed
    # the worker; a job it was running is the worker's to lose, and the broker hands that job out again.
    while os.getppid() == worker:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(1)


def _warm(warmed: Semaphore, worker: int) -> None:
    """Runs first in each process: the pipeline's imports and one tiny photo through it (codecs, caches)."""
    threading.Thread(target=_exit_once_orphaned, args=(worker,), name="orphan-check", daemon=True).start()
    enhance_sync(EnhanceRequest(_sample_photo(), "", Tier.FREE, Style.DEFAULT), max_pixels=96 * 64)
    warmed.release()


POLL_S = 0.02


async def _all_warmed(warmed: Semaphore, processes: int) -> None:
    for _ in range(processes):
        # A process-shared semaphore has no awaitable wait, and one waited for in a thread would outlive a
        # worker told to stop while it starts: polled.
        while not warmed.acquire(block=False):  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)


async def start_pool(processes: int, *, within: float) -> ProcessPoolExecutor:
    """A pool of `processes` engine processes, each up and warmed; DependencyUnavailable past `within` s."""
    context = multiprocessing.get_context("spawn")
    warmed = context.Semaphore(0)
    pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_warm, initargs=(warmed, os.getpid()))
    try:
        # The pool starts a process for each task that finds none idle: these start them all at once.
        for _ in range(processes):
            pool.submit(os.getpid)
        async with asyncio.timeout(within):
            await _all_warmed(warmed, processes)
    except BaseException as error:
        pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(error, TimeoutError):
            raise DependencyUnavailable(
                f"the engine's processes ({processes}) did not all start within {within:g} s"
            ) from error
        raise
    return pool
