"""The worker's state changes: each one commits the job row, its history and its outgoing events together."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable

from services.worker import output
from services.worker.context import WorkerContext
from services.worker.output import Produced
from shared import outbox
from shared import transitions as state
from shared.broker import OutgoingMessage, event_message
from shared.db import Connection
from shared.events import JobFailed, JobQueued, JobRetrying, JobStarted, JobSucceeded, make_event
from shared.jobs import Job
from shared.topology import RETRY_DELAYS_MS

Change = Callable[[Connection], Awaitable[Job | None]]
Messages = Callable[[Job], list[OutgoingMessage]]


async def _commit(ctx: WorkerContext, change: Change, messages: Messages) -> Job | None:
    """Apply one conditional change with the messages it announces, then publish them."""
    async with ctx.pool.acquire() as connection, connection.transaction():
        job = await change(connection)
        staged = [await outbox.stage(connection, message) for message in messages(job)] if job else []
    await outbox.flush(ctx.pool, ctx.broker, staged)
    return job


def _announce(
    ctx: WorkerContext, job: Job, payload: JobStarted | JobSucceeded | JobFailed | JobRetrying
) -> OutgoingMessage:
    event = make_event(payload, job_id=job.id)
    return event_message(event, exchange=ctx.broker.topology.events_exchange, routing_key=event.type.value)


async def start(ctx: WorkerContext, job_id: uuid.UUID, *, takeover: bool) -> Job | None:
    def started(job: Job) -> list[OutgoingMessage]:
        payload = JobStarted(worker_id=ctx.worker_id, tier=job.tier, attempt=job.attempts, queued_at=job.created_at)
        return [_announce(ctx, job, payload)]

    return await _commit(ctx, lambda c: state.start(c, job_id, worker_id=ctx.worker_id, takeover=takeover), started)


async def succeed(ctx: WorkerContext, job: Job, produced: Produced) -> Job | None:
    def succeeded(done: Job) -> list[OutgoingMessage]:
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
        return [_announce(ctx, done, payload)]

    return await _commit(
        ctx,
        lambda c: state.succeed(
            c,
            job.id,
            output_key=produced.output_key,
            content_type=produced.content_type,
            cost=produced.cost,
            engine=produced.engine,
            worker_id=ctx.worker_id,
        ),
        succeeded,
    )


async def fail(ctx: WorkerContext, job: Job, *, code: str, message: str, owner: str | None = None) -> Job | None:
    """processing → failed while `owner` (this worker unless said otherwise) still holds the job."""
    holder = owner or ctx.worker_id

    def failed(done: Job) -> list[OutgoingMessage]:
        payload = JobFailed(
            worker_id=ctx.worker_id,
            tier=done.tier,
            attempt=done.attempts,
            error_code=code,
            error_message=message,
            queued_at=done.created_at,
        )
        return [_announce(ctx, done, payload)]

    done = await _commit(ctx, lambda c: state.fail(c, job.id, code=code, message=message, worker_id=holder), failed)
    if done is not None:
        # An earlier attempt may have stored the output before its worker was lost.
        await output.discard(ctx, done)
    return done


def backoff_ms(level: int, *, scale: float = 1.0) -> int:
    """The level's delay with up to 25 % jitter, so retries of one outage do not arrive together."""
    return int(RETRY_DELAYS_MS[level] * scale * (1 + random.random() / 4))


async def retry(ctx: WorkerContext, job: Job, *, code: str, message: str, owner: str | None = None) -> Job | None:
    """processing → queued with a delayed job.queued, while `owner` (default: this worker) holds the job."""
    holder = owner or ctx.worker_id

    topology = ctx.broker.topology
    level = topology.retry_level(job.attempts)
    delay = backoff_ms(level, scale=ctx.settings.retry_delay_scale)

    def retrying(queued: Job) -> list[OutgoingMessage]:
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
        payload = JobRetrying(
            worker_id=ctx.worker_id,
            tier=queued.tier,
            attempt=queued.attempts,
            delay_ms=delay,
            error_code=code,
            error_message=message,
        )
        delayed = event_message(
            again, exchange="", routing_key=topology.retry_queue(queued.tier, level), expiration_ms=delay
        )
        return [_announce(ctx, queued, payload), delayed]

    return await _commit(
        ctx,
        lambda c: state.schedule_retry(c, job.id, code=code, message=message, delay_ms=delay, worker_id=holder),
        retrying,
    )
