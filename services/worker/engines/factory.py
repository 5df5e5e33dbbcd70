"""Building the engines the settings ask for: one per tier, the paid one under its budget."""

from __future__ import annotations

from concurrent.futures import Executor

import asyncpg

from services.worker.engines import Engine
from services.worker.engines.faulty import FaultyEngine
from services.worker.engines.local import LocalEngine
from services.worker.engines.noop import NoopEngine
from services.worker.engines.routing import BudgetedEngine, TierRouter
from services.worker.faults import Faults
from services.worker.settings import EngineName, WorkerSettings
from shared.domain import Tier
from shared.topology import RETRY_DELAYS_MS


def create_engine(settings: WorkerSettings, executor: Executor, faults: Faults, pool: asyncpg.Pool) -> Engine:
    local = LocalEngine(executor, max_pixels=settings.max_image_pixels)
    engines: dict[EngineName, Engine] = {"local": local}
    if any(settings.engine_for(tier) == "openai" for tier in Tier):
        engines["openai"] = _paid_engine(settings, pool)
    if any(settings.engine_for(tier) == "noop" for tier in Tier):
        engines["noop"] = NoopEngine(max_pixels=settings.max_image_pixels)
    by_tier = {tier: engines[settings.engine_for(tier)] for tier in Tier}
    # Test-only: the fault-injection suite wraps the engine; production never sets LUSTER_FAULTS.
    if faults.engine_faults:
        by_tier = {tier: FaultyEngine(engine, faults) for tier, engine in by_tier.items()}
    return TierRouter(by_tier, fallback=local if settings.engine_fallback == "local" else None)


def _paid_engine(settings: WorkerSettings, pool: asyncpg.Pool) -> Engine:
    from services.worker.engines.openai import OpenAIEngine, worst_case_cost

    paid = OpenAIEngine(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "",
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        timeout=settings.job_timeout,
        max_pixels=settings.max_image_pixels,
    )
    return BudgetedEngine(
        paid,
        pool,
        budget=settings.openai_daily_budget_usd,
        worst_case=worst_case_cost,
        # A call outlives its hold only if the job's timeout cut it off; then the hold expires soon after.
        hold_s=settings.job_timeout + 60,
        longest_wait_s=RETRY_DELAYS_MS[-1] / 1000 * settings.retry_delay_scale,
    )
