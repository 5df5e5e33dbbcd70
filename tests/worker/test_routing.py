"""Routing a job to its tier's engine, the local fallback, and the paid engine's daily budget (on the real
PostgreSQL); the system test tests/system/test_engine_routing.py runs the same through worker processes."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from services.worker.engines import EnhanceRequest, EnhanceResult
from services.worker.engines.routing import BudgetedEngine, TierRouter
from services.worker.settings import WorkerSettings
from shared import spend
from shared.domain import Style, Tier
from shared.errors import EngineError, PermanentEngineError, TransientEngineError

pytestmark = pytest.mark.integration

BILL = Decimal("0.17")


class Stub:
    """An engine that answers with its own name, or raises what it is given."""

    def __init__(self, name: str, *, raises: EngineError | Exception | None = None) -> None:
        self.name = name
        self.raises = raises
        self.calls = 0
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return EnhanceResult(b"jpeg", "image/jpeg", 4, 3, BILL if self.name == "openai" else Decimal(0), self.name)


def request(tier: Tier = Tier.PREMIUM) -> EnhanceRequest:
    return EnhanceRequest(b"photo", "", tier, Style.DEFAULT)


async def test_each_tier_goes_to_its_own_engine_and_each_engine_is_closed_once() -> None:
    local, paid = Stub("local"), Stub("openai")
    router = TierRouter({Tier.FREE: local, Tier.PREMIUM: paid}, fallback=local)

    assert (await router.enhance(request(Tier.FREE))).engine == "local"
    result = await router.enhance(request(Tier.PREMIUM))
    await router.aclose()

    assert (result.engine, result.fallback_reason, result.cost) == ("openai", None, BILL)
    assert (local.calls, paid.calls, local.closed, paid.closed) == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TransientEngineError("503", code="openai_unavailable"), "provider_unavailable"),
        (TransientEngineError("timeout", code="openai_timeout"), "provider_unavailable"),
        (TransientEngineError("429", code="openai_rate_limited", retry_after_s=30), "rate_limited"),
        (PermanentEngineError("no credit", code="openai_quota"), "quota_exhausted"),
        (TransientEngineError("spent", code="budget_exhausted"), "budget_exhausted"),
    ],
)
async def test_the_local_engine_stands_in_and_the_job_says_why(error: EngineError, reason: str) -> None:
    error.cost = Decimal("0.01")  # billed before it failed
    local = Stub("local")
    router = TierRouter({Tier.FREE: local, Tier.PREMIUM: Stub("openai", raises=error)}, fallback=local)

    result = await router.enhance(request())

    assert (result.engine, result.fallback_reason, result.cost) == ("local", reason, Decimal("0.01"))


async def test_without_the_fallback_or_for_a_refusal_another_engine_would_share_the_error_stands() -> None:
    down = TransientEngineError("503", code="openai_unavailable")
    waiting = TierRouter({Tier.FREE: Stub("local"), Tier.PREMIUM: Stub("openai", raises=down)})
    with pytest.raises(TransientEngineError):
        await waiting.enhance(request())

    local = Stub("local")
    refused = PermanentEngineError("content policy", code="openai_rejected")
    falling_back = TierRouter({Tier.FREE: local, Tier.PREMIUM: Stub("openai", raises=refused)}, fallback=local)
    with pytest.raises(PermanentEngineError):
        await falling_back.enhance(request())
    assert local.calls == 0


def budgeted(pool: asyncpg.Pool, engine: Stub, budget: str | None) -> BudgetedEngine:
    return BudgetedEngine(
        engine,
        pool,
        budget=Decimal(budget) if budget else None,
        worst_case=lambda tier: Decimal("0.30"),
        hold_s=60,
        longest_wait_s=120,
    )


async def test_the_budget_refuses_a_call_it_has_no_room_for_and_asks_to_wait(pool: asyncpg.Pool) -> None:
    paid = Stub("openai")
    engine = budgeted(pool, paid, "0.40")

    assert (await engine.enhance(request())).cost == BILL
    with pytest.raises(TransientEngineError) as refused:
        await engine.enhance(request())  # 0.17 spent + 0.30 held > 0.40

    assert refused.value.code == "budget_exhausted"
    assert refused.value.retry_after_s is not None and 0 < refused.value.retry_after_s <= 120
    assert paid.calls == 1
    assert (await spend.totals(pool)).today == BILL
    assert await pool.fetchval("SELECT count(*) FROM spend_holds") == 0


async def test_a_failed_call_settles_what_it_was_billed_and_a_lost_one_keeps_its_hold(pool: asyncpg.Pool) -> None:
    billed = TransientEngineError("garbled", code="openai_unavailable", cost=Decimal("0.05"))
    with pytest.raises(TransientEngineError):
        await budgeted(pool, Stub("openai", raises=billed), "10").enhance(request())
    assert (await spend.totals(pool)).today == Decimal("0.05")

    # Cut off mid-call (a timeout): it may have been billed, so its worst case stays held until expiry.
    with pytest.raises(RuntimeError):
        await budgeted(pool, Stub("openai", raises=RuntimeError("cut off")), "10").enhance(request())
    assert await pool.fetchval("SELECT sum(amount_usd) FROM spend_holds") == Decimal("0.30")


async def test_without_a_budget_every_bill_is_still_counted(pool: asyncpg.Pool) -> None:
    engine = budgeted(pool, Stub("openai"), None)
    for _ in range(3):
        await engine.enhance(request())
    assert (await spend.totals(pool)).today == 3 * BILL
    assert await pool.fetchval("SELECT count(*) FROM spend_holds") == 0


def test_a_tier_without_its_own_engine_uses_the_default_and_openai_needs_a_key() -> None:
    settings = WorkerSettings(engine="local", engine_premium="openai", openai_api_key="sk-test")
    assert (settings.engine_for(Tier.FREE), settings.engine_for(Tier.PREMIUM)) == ("local", "openai")
    with pytest.raises(ValueError, match="OPENAI_API_KEY is required when ENGINE_PREMIUM=openai"):
        WorkerSettings(engine="local", engine_premium="openai")
