"""The Celery baseline: one task doing Luster's per-job work (bench/baselines/job.py) on one event loop per
worker process. `celery -A bench.baselines.celery_app worker --pool threads --concurrency 8` runs it; the
settings come from the environment, as the worker's do.
"""

from __future__ import annotations

import os
import threading
import uuid

from celery import Celery

from bench.baselines.job import LoopThread, ProcessResources, run_job

QUEUE = os.environ.get("BENCH_BASELINE_QUEUE", "bench-drain-celery")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

app = Celery("bench_baseline", broker=AMQP_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    # Acknowledged after the job's last commit, as Luster's worker and Dramatiq acknowledge.
    task_acks_late=True,
    # Confirms on enqueueing too, as Luster's api publishes its job.queued messages.
    broker_transport_options={"confirm_publish": True},
    worker_enable_remote_control=False,
    worker_hijack_root_logger=False,
)
resources = ProcessResources("celery-baseline")
_loop: LoopThread | None = None
_loop_lock = threading.Lock()


def _loop_thread() -> LoopThread:
    """Started by the first task, in the process that runs the tasks (a prefork child, were the pool prefork)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = LoopThread()
        return _loop


@app.task(name="drain_job", max_retries=3)
def drain_job(job_id: str) -> None:
    _loop_thread().run(_run(job_id))


async def _run(job_id: str) -> None:
    await run_job(await resources.get(), uuid.UUID(job_id))
