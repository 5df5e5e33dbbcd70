"""The worker's state changes: each one commits the job row, its history and its outgoing events together."""

from __future__ import annotations

import random
import uuid

from services.worker import output
from services.worker.context import WorkerContext
from services.worker.output import Produced
from shared import fairshare, outbox
from shared import jobstate as state
from shared.broker import event_message
from shared.events import JobFailed, JobQueued, JobRetrying, JobStarted, JobSucceeded, make_event
from shared.jobs import Job
from shared.messages import OutgoingMessage
from shared.topology import RETRY_DELAYS_MS


def _announce(
    ctx: WorkerContext, job: Job, payload: JobStarted | JobSucceeded | JobFailed | JobRetrying
) -> OutgoingMessage:
    event = make_event(payload, job_id=job.id)
    return event_message(event, exchange=ctx.broker.topology.events_exchange, routing_key=event.type.value)


async def start(ctx: WorkerContext, job_id: uuid.UUID, *, takeover: bool) -> Job | None:
    async with outbox.transaction(ctx.pool, ctx.broker) as box:
        job = await state.start(box.connection, job_id, worker_id=ctx.worker_id, takeover=takeover)
        if job is not None:
            payload = JobStarted(worker_id=ctx.worker_id, tier=job.tier, attempt=job.attempts, queued_at=job.created_at)
            await box.stage(_announce(ctx, job, payload))
            # Its place in the work queues goes to its owner's next held job (shared/fairshare.py).
            box.publish_after_commit(
                await fairshare.left_queue(box.connection, job, cap=ctx.settings.fair_share_queued)
            )
    return job


async def succeed(ctx: WorkerContext, job: Job, produced: Produced) -> Job | None:
    async with outbox.transaction(ctx.pool, ctx.broker) as box:
        done = await state.succeed(
            box.connection,
            job.id,
            output_key=produced.output_key,
            content_type=produced.content_type,
            cost=produced.cost,
            engine=produced.engine,
            worker_id=ctx.worker_id,
        )
        if done is not None:
            payload = JobSucceeded(
                worker_id=ctx.worker_id,
                tier=done.tier,
                attempt=done.attempts,
                output_key=produced.output_key,
                width=produced.width,
                height=produced.height,
                cost=produced.cost,
                engine=produced.engine,
                processing_ms=produced.processing_ms,
                queued_at=done.created_at,
            )
            await box.stage(_announce(ctx, done, payload))
    return done


async def fail(ctx: WorkerContext, job: Job, *, code: str, message: str, owner: str | None = None) -> Job | None:
    """processing → failed while `owner` (this worker unless said otherwise) still holds the job."""
    async with outbox.transaction(ctx.pool, ctx.broker) as box:
        done = await state.fail(box.connection, job.id, code=code, message=message, worker_id=owner or ctx.worker_id)
        if done is not None:
            payload = JobFailed(
                worker_id=ctx.worker_id,
                tier=done.tier,
                attempt=done.attempts,
                error_code=code,
                error_message=message,
                queued_at=done.created_at,
            )
            await box.stage(_announce(ctx, done, payload))
    if done is not None:
        # An earlier attempt may have stored the output before its worker was lost.
        await output.discard(ctx, done)
    return done


def backoff_ms(level: int, *, scale: float = 1.0) -> int:
    """The level's delay with up to 25 % jitter, so retries of one outage do not arrive together."""
    return int(RETRY_DELAYS_MS[level] * scale * (1 + random.random() / 4))


async def retry(ctx: WorkerContext, job: Job, *, code: str, message: str, owner: str | None = None) -> Job | None:
    """processing → queued with a delayed job.queued, while `owner` (default: this worker) holds the job."""
    topology = ctx.broker.topology
    level = topology.retry_level(job.attempts)
    delay = backoff_ms(level, scale=ctx.settings.retry_delay_scale)
    async with outbox.transaction(ctx.pool, ctx.broker) as box:
        queued = await state.schedule_retry(
            box.connection, job.id, code=code, message=message, delay_ms=delay, worker_id=owner or ctx.worker_id
        )
        if queued is not None:
            retrying = JobRetrying(
                worker_id=ctx.worker_id,
                tier=queued.tier,
                attempt=queued.attempts,
                delay_ms=delay,
                error_code=code,
                error_message=message,
            )
            again = make_event(
                JobQueued(
                    asset_id=queued.asset_id,
                    tier=queued.tier,
                    style=queued.style,
                    prompt=queued.prompt,
                    attempt=queued.attempts,
                ),
                job_id=queued.id,
            )
            await box.stage(_announce(ctx, queued, retrying))
            # Back to its work queue once the delay queue's TTL runs out.
            await box.stage(
                event_message(
                    again, exchange="", routing_key=topology.retry_queue(queued.tier, level), expiration_ms=delay
                )
            )
    return queued
