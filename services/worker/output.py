"""Producing a job's output: read the original, run the engine under a timeout, store the result."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from services.worker import guard
from services.worker.context import WorkerContext
from services.worker.engines import EnhanceRequest, EnhanceResult
from services.worker.scheduler import Slot
from shared.assets import get_asset
from shared.errors import DependencyUnavailable, PermanentEngineError, TransientEngineError
from shared.jobs import Job
from shared.telemetry.tracing import tracer

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True)
class Produced:
    output_key: str
    content_type: str
    width: int
    height: int
    cost: Decimal
    engine: str
    processing_ms: float
    fallback_reason: str | None = None
    structure_score: float | None = None
    flagged: bool = False


def output_key(job: Job, content_type: str) -> str:
    """Derived from the job alone, so a redo replaces the output instead of adding a second one."""
    return f"{job.id}.{EXTENSIONS.get(content_type, 'bin')}"


async def discard(ctx: WorkerContext, job: Job) -> None:
    """Remove what an interrupted attempt stored for a job that has now failed: it can never be served."""
    await ctx.outputs.remove([output_key(job, content_type) for content_type in EXTENSIONS])


@contextlib.contextmanager
def _store_outage_is_transient(billed: Decimal = Decimal("0")) -> Iterator[None]:
    """A store outage as a transient failure, carrying what the attempt was `billed` so far."""
    try:
        yield
    except DependencyUnavailable as error:
        raise TransientEngineError(error.message, code="storage_unavailable", cost=billed) from error


async def _original(ctx: WorkerContext, job: Job) -> bytes:
    asset = await get_asset(ctx.pool, job.asset_id)
    if asset is None:
        raise PermanentEngineError(f"asset {job.asset_id} no longer exists", code="asset_missing")
    try:
        with _store_outage_is_transient():
            return await ctx.uploads.get(asset.storage_key)
    except FileNotFoundError as error:
        raise PermanentEngineError("the original photo is missing from storage", code="asset_missing") from error


async def _enhance(ctx: WorkerContext, request: EnhanceRequest) -> EnhanceResult:
    asked = ctx.settings.engine_for(request.tier)
    attributes = {
        "luster.engine": asked,
        "luster.tier": request.tier.value,
        "luster.style": request.style.value,
        "luster.input_bytes": len(request.image),
    }
    with tracer.start_as_current_span("engine enhance", attributes=attributes) as span:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(ctx.settings.job_timeout):
                result = await ctx.engine.enhance(request)
        except Exception as error:
            ctx.metrics.engine_ran(asked, request.tier, time.perf_counter() - started)
            if isinstance(error, TimeoutError):
                raise TransientEngineError(
                    f"engine took longer than {ctx.settings.job_timeout:g} s", code="engine_timeout"
                ) from error
            raise
        # Labelled with the engine that answered: a fallback's time is the local engine's.
        ctx.metrics.engine_ran(result.engine, request.tier, time.perf_counter() - started)
        span.set_attributes(
            {
                "luster.output_width": result.width,
                "luster.output_height": result.height,
                "luster.output_bytes": len(result.image),
                "luster.cost": float(result.cost),
                "luster.engine_used": result.engine,
                "luster.duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
        return result


async def produce(ctx: WorkerContext, job: Job, slot: Slot) -> Produced:
    """The job's output, stored; `slot` is given back as soon as the engine is done with the photo."""
    started = time.perf_counter()
    try:
        request = EnhanceRequest(image=await _original(ctx, job), prompt=job.prompt, tier=job.tier, style=job.style)
        judged = await guard.checked(ctx, request, functools.partial(_enhance, ctx))
    finally:
        slot.release()
    result = judged.result
    key = output_key(job, result.content_type)
    ctx.faults.arm_output_kill(ctx.outputs)  # test-only; does nothing unless LUSTER_FAULTS asks
    with _store_outage_is_transient(billed=result.cost):
        await ctx.outputs.put(key, result.image)
    return Produced(
        output_key=key,
        content_type=result.content_type,
        width=result.width,
        height=result.height,
        cost=result.cost,
        engine=result.engine,
        processing_ms=round((time.perf_counter() - started) * 1000, 2),
        fallback_reason=result.fallback_reason,
        structure_score=judged.score,
        flagged=judged.flagged,
    )
