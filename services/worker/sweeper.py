"""The stuck-job sweeper: no job stays `processing` after its worker is gone, no half-written output stays.

A job is stuck when it is `processing` and its worker has stopped, has not written its liveness row
for `liveness` seconds (three heartbeats), or has held it past `job_timeout` plus a grace (the
worker's own timeout should have fired, so its event loop is wedged). A stuck job with attempts left
is re-queued through the retry delay queues; one without is failed with `worker_lost`. Every
worker sweeps; the conditional UPDATE (status and owner) lets exactly one of them act on each job.

It also removes what crashes leave in storage (services/worker/leftovers.py): half-written outputs on
every sweep, half-written and unrecorded uploads once an hour; and, in the same hourly pass, what is
older than its retention (services/worker/retention.py).
"""

from __future__ import annotations

import asyncio
import time

import structlog

from services.worker import leftovers, retention, transitions
from services.worker.context import WorkerContext
from services.worker.transitions import Failure
from shared import jobs
from shared.telemetry.tracing import untraced

log = structlog.get_logger()

STUCK_CODE = "worker_lost"


def liveness_window(ctx: WorkerContext) -> float:
    return ctx.settings.heartbeat_interval * 3


async def sweep_once(ctx: WorkerContext) -> int:
    settings = ctx.settings
    with untraced():
        stuck = await jobs.find_stuck(
            ctx.pool, liveness_s=liveness_window(ctx), timeout_s=settings.job_timeout + liveness_window(ctx)
        )
    for job in stuck:
        message = f"worker {job.worker_id} stopped answering while it held the job"
        owner = job.worker_id or ""
        if job.attempts < settings.max_attempts:
            moved = await transitions.retry(ctx, job, Failure(STUCK_CODE, message), owner=owner)
        else:
            moved = await transitions.fail(ctx, job, Failure(STUCK_CODE, message), owner=owner)
        if moved is not None:
            log.warning("job.swept", job_id=str(job.id), lost_worker=job.worker_id, status=moved.status.value)
    # A write untouched for as long as a stuck job is given has lost its writer.
    await leftovers.clear_outputs(ctx.outputs, older_than_s=settings.job_timeout + liveness_window(ctx))
    return len(stuck)


async def sweep(ctx: WorkerContext, interval_s: float) -> None:
    """Run until cancelled."""
    next_upload_scan = time.monotonic()
    while True:
        try:
            await sweep_once(ctx)
            if time.monotonic() >= next_upload_scan:
                next_upload_scan = time.monotonic() + leftovers.UPLOAD_SCAN_EVERY_S
                with untraced():
                    await leftovers.clear_uploads(ctx.pool, ctx.uploads)
                    await retention.expire(ctx)
        except Exception:
            log.warning("sweeper.failed", exc_info=True)
        await asyncio.sleep(interval_s)
