"""Which engine enhances a job: its tier's, under the paid engine's daily budget, and the local engine in
the paid one's place when the fallback policy says so."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal

import asyncpg
import structlog

from services.worker.engines import Engine, EnhanceRequest, EnhanceResult
from shared import spend
from shared.db import DATABASE_DOWN_ERRORS
from shared.domain import Tier
from shared.errors import EngineError, TransientEngineError

log = structlog.get_logger()

# The paid engine's failures that another engine would not share, by the reason the job reports.
FALLBACK_REASONS: Mapping[str, str] = {
    "openai_unavailable": "provider_unavailable",
    "openai_timeout": "provider_unavailable",
    "openai_rate_limited": "rate_limited",
    "openai_quota": "quota_exhausted",
    "budget_exhausted": "budget_exhausted",
}


class TierRouter:
    """Each tier's engine; with a `fallback`, the jobs its paid engine cannot take go to that one instead."""

    name = "router"

    def __init__(self, by_tier: Mapping[Tier, Engine], *, fallback: Engine | None = None) -> None:
        self._by_tier = dict(by_tier)
        self._fallback = fallback

    def engine_for(self, tier: Tier) -> Engine:
        return self._by_tier[tier]

    async def aclose(self) -> None:
        engines = {id(engine): engine for engine in [*self._by_tier.values(), self._fallback] if engine}
        for engine in engines.values():
            await engine.aclose()

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        engine = self._by_tier[request.tier]
        try:
            return await engine.enhance(request)
        except EngineError as error:
            reason = FALLBACK_REASONS.get(error.code)
            if self._fallback is None or self._fallback is engine or reason is None:
                raise
            billed = error.cost
        log.warning("engine.fallback", reason=reason, engine=engine.name, fallback=self._fallback.name)
        result = await self._fallback.enhance(request)
        # What the paid engine billed before it failed is still the job's cost.
        return dataclasses.replace(result, cost=result.cost + billed, fallback_reason=reason)


class BudgetedEngine:
    """The paid engine under a daily budget in US dollars shared by every worker (shared/spend.py).

    Every call's bill goes into the day's ledger, budget or not, so the dashboard can show the spend.
    """

    def __init__(
        self,
        engine: Engine,
        pool: asyncpg.Pool,
        *,
        budget: Decimal | None,
        worst_case: Callable[[Tier], Decimal],
        hold_s: float,
        longest_wait_s: float,
    ) -> None:
        self.name = engine.name
        self.engine = engine
        self._pool = pool
        self._budget = budget
        self._worst_case = worst_case
        self._hold_s = hold_s
        self._longest_wait_s = longest_wait_s

    async def aclose(self) -> None:
        await self.engine.aclose()

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        held = await self._hold(request.tier) if self._budget is not None else None
        try:
            result = await self.engine.enhance(request)
        except EngineError as error:
            await self._settle(held, error.cost)
            raise
        # Anything else (a timeout's cancellation) may or may not have been billed: the hold stays until it
        # expires, so the budget counts the worst case for that long rather than nothing.
        await self._settle(held, result.cost)
        return result

    async def _hold(self, tier: Tier) -> spend.Hold:
        assert self._budget is not None
        try:
            held = await spend.hold(self._pool, self._worst_case(tier), budget=self._budget, ttl_s=self._hold_s)
        except DATABASE_DOWN_ERRORS as error:
            raise TransientEngineError("the spend ledger is unreachable", code="database_unavailable") from error
        if held is None:
            raise TransientEngineError(
                f"today's budget for the paid engine (US${self._budget}) is spent",
                code="budget_exhausted",
                # Tomorrow renews it, but no delay queue holds a job that long: ask again at the longest wait.
                retry_after_s=min(spend.seconds_until_tomorrow(), self._longest_wait_s),
            )
        return held

    async def _settle(self, held: spend.Hold | None, cost: Decimal) -> None:
        try:
            await spend.settle(self._pool, held, cost)
        except DATABASE_DOWN_ERRORS:
            # The output exists and was paid for: failing the job now would only pay for it twice.
            log.warning("spend.settle_failed", cost=str(cost), exc_info=True)
