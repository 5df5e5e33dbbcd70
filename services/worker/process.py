"""Handling one `job.queued` delivery: claim the job, produce the output, record the outcome."""

from __future__ import annotations

import uuid

import sentry_sdk
import structlog

from services.worker import transitions
from services.worker.context import WorkerContext
from services.worker.output import produce
from services.worker.scheduler import Slot
from services.worker.transitions import Failure
from shared import jobs
from shared.broker import Delivery
from shared.errors import EngineError, PermanentEngineError, PoisonMessage, UnsupportedImage
from shared.events import JobQueued
from shared.jobs import Job

log = structlog.get_logger()


def _job_id(delivery: Delivery) -> uuid.UUID:
    if not isinstance(delivery.payload, JobQueued) or delivery.event.job_id is None:
        raise PoisonMessage(f"a work queue received {delivery.event.type.value}, not a job.queued with a job id")
    return delivery.event.job_id


async def _claim(ctx: WorkerContext, delivery: Delivery) -> Job | None:
    """The job, now ours; None when there is nothing to do (terminal, canceled, or being run elsewhere)."""
    job_id = _job_id(delivery)
    # A redelivered message means the worker that held it is gone, so its `processing` job is ours now.
    job = await transitions.start(ctx, job_id, takeover=delivery.redelivered)
    if job is not None:
        return job
    current = await jobs.get_job(ctx.pool, job_id)
    if current is None:
        raise PoisonMessage(f"job {job_id} does not exist")
    log.info("job.skipped", status=current.status.value)
    return None


async def handle_job(ctx: WorkerContext, delivery: Delivery, slot: Slot) -> None:
    job = await _claim(ctx, delivery)
    if job is None:
        return
    with (
        structlog.contextvars.bound_contextvars(tier=job.tier.value, attempt=job.attempts),
        sentry_sdk.isolation_scope() as scope,
    ):
        # Every error Sentry sees from here on is about this job.
        scope.set_tag("job_id", str(job.id))
        scope.set_tag("tier", job.tier.value)
        scope.set_tag("engine", ctx.settings.engine_for(job.tier))
        await _run(ctx, job, slot)


async def _run(ctx: WorkerContext, job: Job, slot: Slot) -> None:
    try:
        produced = await produce(ctx, job, slot)
    except (PermanentEngineError, UnsupportedImage) as error:
        await _give_up(ctx, job, error)
    except EngineError as error:
        await _retry_or_give_up(ctx, job, error)
    except Exception as error:  # an engine bug: retried like a transient fault, within the limit
        log.exception("job.engine_crashed")
        sentry_sdk.capture_exception(error)
        # The job's error is what its customer reads: the exception's text stays in the log and in Sentry.
        crashed = EngineError(f"the engine failed unexpectedly ({type(error).__name__})", code="engine_crashed")
        await _retry_or_give_up(ctx, job, crashed)
    else:
        ctx.faults.maybe_kill("after_output")
        await transitions.succeed(ctx, job, produced)
        ctx.faults.maybe_kill("after_commit")
        ctx.stats.processed += 1
        ctx.metrics.finished("succeeded", job.tier, engine=produced.engine, cost=produced.cost)
        log.info("job.succeeded", engine=produced.engine, processing_ms=produced.processing_ms)


async def _give_up(ctx: WorkerContext, job: Job, error: EngineError | UnsupportedImage) -> None:
    failure = Failure.of(error)
    await transitions.fail(ctx, job, failure)
    ctx.stats.failed += 1
    ctx.metrics.finished("failed", job.tier, engine=ctx.settings.engine_for(job.tier), cost=failure.cost)
    sentry_sdk.capture_exception(error)
    log.warning("job.failed", error_code=error.code, error=error.message)


async def _retry_or_give_up(ctx: WorkerContext, job: Job, error: EngineError) -> None:
    if job.attempts < ctx.settings.max_attempts:
        failure = Failure.of(error)
        await transitions.retry(ctx, job, failure)
        ctx.metrics.finished("retried", job.tier, engine=ctx.settings.engine_for(job.tier), cost=failure.cost)
        log.warning("job.retrying", error_code=error.code, error=error.message, retry_after_s=failure.retry_after_s)
        return
    await _give_up(ctx, job, error)
    raise PoisonMessage(f"gave up after {job.attempts} attempts: {error.code}: {error.message}")
