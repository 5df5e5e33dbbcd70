"""The Dramatiq baseline: one actor doing Luster's per-job work (bench/baselines/job.py) on Dramatiq's own
event loop thread. `dramatiq bench.baselines.dramatiq_app --processes 1 --threads 8` runs it; the
settings come from the environment, as the worker's do.
"""

from __future__ import annotations

import os
import uuid

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware.asyncio import AsyncIO

from bench.baselines.job import ProcessResources, run_job

QUEUE = os.environ.get("BENCH_BASELINE_QUEUE", "bench-drain-dramatiq")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

# Confirms on enqueueing too, as Luster's api publishes its job.queued messages.
broker = RabbitmqBroker(url=AMQP_URL, confirm_delivery=True)
broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)
resources = ProcessResources("dramatiq-baseline")


@dramatiq.actor(queue_name=QUEUE, max_retries=3)
async def drain_job(job_id: str) -> None:
    await run_job(await resources.get(), uuid.UUID(job_id))
