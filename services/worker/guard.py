"""The structure guard: an edit may change a photo's light and colour, never the property in it.

Listing rules (MLS, advertising law) forbid photos that misrepresent a property, and a generative edit can
move a window or add a tree. After the engine, the output is compared with the photo on structure
(services/worker/engines/structure.py); below the threshold the job is flagged, and the policy says what
then: deliver it flagged, fail it, or ask once more with a stricter prompt and fail if that is flagged too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import structlog

from services.worker.context import WorkerContext
from services.worker.engines import EnhanceRequest, EnhanceResult
from services.worker.engines.structure import structure_score
from shared.errors import EngineError, PermanentEngineError
from shared.telemetry.tracing import tracer

log = structlog.get_logger()

# Engines that redraw the photo, and so can redraw the property; the local engine only maps tones.
GENERATIVE_ENGINES = frozenset({"openai"})

Enhance = Callable[[EnhanceRequest], Awaitable[EnhanceResult]]


class StructureChanged(PermanentEngineError):
    """The output moved the property's structure, and the policy does not deliver it."""

    def __init__(self, score: float, threshold: float, *, cost: Decimal) -> None:
        super().__init__(
            f"the edit changed the property's structure (score {score:.3f}, below {threshold:g}); "
            "a listing photo must not misrepresent the property",
            code="structure_changed",
            cost=cost,
        )
        self.score = score


@dataclass(frozen=True)
class Checked:
    """An engine's result with the guard's verdict: its score (None when it did not look) and the flag."""

    result: EnhanceResult
    score: float | None = None
    flagged: bool = False


def _applies(ctx: WorkerContext, result: EnhanceResult) -> bool:
    mode = ctx.settings.structure_guard
    return mode == "all" or (mode == "generative" and result.engine in GENERATIVE_ENGINES)


async def _score(ctx: WorkerContext, original: bytes, output: bytes) -> float:
    work = functools.partial(structure_score, original, output, max_pixels=ctx.settings.max_image_pixels)
    with tracer.start_as_current_span("structure guard") as span:
        score = await asyncio.get_running_loop().run_in_executor(ctx.executor, work)
        span.set_attribute("luster.structure_score", score)
    return score


async def checked(ctx: WorkerContext, request: EnhanceRequest, enhance: Enhance) -> Checked:
    """`enhance` the photo, then judge the output as the settings say."""
    result = await enhance(request)
    if not _applies(ctx, result):
        return Checked(result)
    threshold, policy = ctx.settings.structure_threshold, ctx.settings.structure_policy
    score = await _score(ctx, request.image, result.image)
    if score >= threshold:
        return Checked(result, score)
    log.warning("structure.flagged", score=round(score, 4), threshold=threshold, policy=policy)
    if policy == "deliver":
        return Checked(result, score, flagged=True)
    if policy == "retry":
        again = await _again(request, enhance, billed=result.cost)
        if not _applies(ctx, again):
            return Checked(again)
        result, score = again, await _score(ctx, request.image, again.image)
        if score >= threshold:
            return Checked(result, score)
    raise StructureChanged(score, threshold, cost=result.cost)


async def _again(request: EnhanceRequest, enhance: Enhance, *, billed: Decimal) -> EnhanceResult:
    """The stricter second try; its cost (or its failure's) includes the first output's, which was billed."""
    try:
        again = await enhance(dataclasses.replace(request, strict=True))
    except EngineError as error:
        error.cost += billed
        raise
    return dataclasses.replace(again, cost=again.cost + billed)
