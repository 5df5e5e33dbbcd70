"""The worker's state changes: each one commits the job row, its history and its outgoing events together
(in a transaction it may share with other changes under way at the same time: shared/groupcommit.py)."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from services.worker import output
from services.worker.context import WorkerContext
from services.worker.guard import StructureChanged
from services.worker.output import Produced
from shared import fairshare
from shared import jobstate as state
from shared.broker import event_message
from shared.errors import EngineError, LusterError, TransientEngineError
from shared.events import JobFailed, JobQueued, JobRetrying, JobStarted, JobSucceeded, make_event
from shared.jobs import Job
from shared.messages import OutgoingMessage
from shared.outbox import Outbox
from shared.topology import RETRY_DELAYS_MS
from shared.webhooks import staging as webhooks


@dataclass(frozen=True)
class Failure:
    """Why an attempt ended without an output: what the job's error says, what the attempt was billed,
    and how long the engine asked to be left alone."""

    code: str
    message: str
    cost: Decimal = Decimal("0")
    retry_after_s: float | None = None
    # Set when the structure guard failed the output: the job is flagged with this score.
    structure_score: float | None = None

    @classmethod
    def of(cls, error: LusterError) -> Failure:
        cost = error.cost if isinstance(error, EngineError) else Decimal("0")
        wait = error.retry_after_s if isinstance(error, TransientEngineError) else None
        score = error.score if isinstance(error, StructureChanged) else None
        return cls(error.code, error.message, cost, wait, score)


def _announce(
    ctx: WorkerContext, job: Job, payload: JobStarted | JobSucceeded | JobFailed | JobRetrying
) -> OutgoingMessage:
    event = make_event(payload, job_id=job.id)
    return event_message(event, exchange=ctx.broker.topology.events_exchange, routing_key=event.type.value)


async def start(ctx: WorkerContext, job_id: uuid.UUID, *, takeover: bool) -> Job | None:
    async def change(box: Outbox) -> Job | None:
        job = await state.start(box.connection, job_id, worker_id=ctx.worker_id, takeover=takeover)
        if job is not None:
            payload = JobStarted(worker_id=ctx.worker_id, tier=job.tier, attempt=job.attempts, queued_at=job.created_at)
            await box.stage(_announce(ctx, job, payload))
            await webhooks.announce(box, ctx.broker.topology, job)
            # Its place in the work queues goes to its owner's next held job (shared/fairshare.py).
            box.publish_after_commit(
                await fairshare.left_queue(box.connection, job, cap=ctx.settings.fair_share_queued)
            )
        return job

    return await ctx.commits.run(change)


async def succeed(ctx: WorkerContext, job: Job, produced: Produced) -> Job | None:
    async def change(box: Outbox) -> Job | None:
        done = await state.succeed(
            box.connection,
            job.id,
            output_key=produced.output_key,
            content_type=produced.content_type,
            cost=produced.cost,
            engine=produced.engine,
            worker_id=ctx.worker_id,
            fallback_reason=produced.fallback_reason,
            structure_score=produced.structure_score,
            flagged=produced.flagged,
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
                fallback_reason=produced.fallback_reason,
                structure_score=produced.structure_score,
                flagged=produced.flagged,
            )
            await box.stage(_announce(ctx, done, payload))
            await webhooks.announce(box, ctx.broker.topology, done)
        return done

    return await ctx.commits.run(change)


async def fail(ctx: WorkerContext, job: Job, failure: Failure, *, owner: str | None = None) -> Job | None:
    """processing → failed while `owner` (this worker unless said otherwise) still holds the job."""
    code, message = failure.code, failure.message

    async def change(box: Outbox) -> Job | None:
        done = await state.fail(
            box.connection,
            job.id,
            code=code,
            message=message,
            worker_id=owner or ctx.worker_id,
            cost=failure.cost,
            structure_score=failure.structure_score,
        )
        if done is not None:
            payload = JobFailed(
                worker_id=ctx.worker_id,
                tier=done.tier,
                attempt=done.attempts,
                error_code=code,
                error_message=message,
                queued_at=done.created_at,
                cost=done.cost,
                structure_score=failure.structure_score,
            )
            await box.stage(_announce(ctx, done, payload))
            await webhooks.announce(box, ctx.broker.topology, done)
        return done

    done = await ctx.commits.run(change)
    if done is not None:
        # An earlier attempt may have stored the output before its worker was lost.
        await output.discard(ctx, done)
    return done


def backoff_ms(level: int, *, scale: float = 1.0, ladder: Sequence[int] = RETRY_DELAYS_MS) -> int:
    """The level's delay with up to 25 % jitter, so retries of one outage do not arrive together."""
    return int(ladder[level] * scale * (1 + random.random() / 4))


def retry_delay(attempt_level: int, *, scale: float, at_least_ms: int = 0) -> tuple[int, int]:
    """The delay queue level and the delay for a retry: the attempt's backoff, or `at_least_ms` (an
    engine's Retry-After) when longer; in the lowest level, from the attempt's own up, whose delay is
    not shorter than the Retry-After.

    A delay queue expires messages only at its head, so a wait longer than its level's would hold up
    the ones behind it; the top level takes any longer wait, and delays its neighbours by that much.
    """
    delay = max(backoff_ms(attempt_level, scale=scale), at_least_ms)
    fitting = (n for n in range(attempt_level, len(RETRY_DELAYS_MS)) if RETRY_DELAYS_MS[n] * scale >= at_least_ms)
    return next(fitting, len(RETRY_DELAYS_MS) - 1), delay


async def retry(ctx: WorkerContext, job: Job, failure: Failure, *, owner: str | None = None) -> Job | None:
    """processing → queued with a delayed job.queued, while `owner` (default: this worker) holds the job.

    The delay is the attempt's backoff, or the failure's `retry_after_s` when the engine asked for longer.
    """
    code, message = failure.code, failure.message
    topology = ctx.broker.topology
    level, delay = retry_delay(
        topology.retry_level(job.attempts),
        scale=ctx.settings.retry_delay_scale,
        at_least_ms=math.ceil((failure.retry_after_s or 0) * 1000),
    )

    async def change(box: Outbox) -> Job | None:
        queued = await state.schedule_retry(
            box.connection,
            job.id,
            code=code,
            message=message,
            delay_ms=delay,
            worker_id=owner or ctx.worker_id,
            cost=failure.cost,
        )
        if queued is not None:
            retrying = JobRetrying(
                worker_id=ctx.worker_id,
                tier=queued.tier,
                attempt=queued.attempts,
                delay_ms=delay,
                error_code=code,
                error_message=message,
                cost=failure.cost,
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

    return await ctx.commits.run(change)
