"""The paid engine's daily budget on the real PostgreSQL: holds from many workers at once never overshoot it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from shared import spend
from shared.db import create_pool

pytestmark = pytest.mark.integration

WORST_CASE = Decimal("0.30")


async def test_concurrent_holds_from_many_connections_never_pass_the_budget(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # Ten "workers", each with its own pool, ask at once for a worst case of $0.30 against $1.00.
    pools = [await create_pool(database_url, min_size=1, max_size=1) for _ in range(10)]
    try:
        holds = await asyncio.gather(
            *(spend.hold(each, WORST_CASE, budget=Decimal("1.00"), ttl_s=60) for each in pools)
        )
    finally:
        await asyncio.gather(*(each.close() for each in pools))

    granted = [held for held in holds if held is not None]
    assert len(granted) == 3  # 3 × 0.30 ≤ 1.00 < 4 × 0.30
    assert await pool.fetchval("SELECT sum(amount_usd) FROM spend_holds") == Decimal("0.90")


async def test_settling_replaces_the_hold_with_the_bill_and_frees_the_difference(pool: asyncpg.Pool) -> None:
    budget = Decimal("0.50")
    first = await spend.hold(pool, WORST_CASE, budget=budget, ttl_s=60)
    assert first is not None
    assert await spend.hold(pool, WORST_CASE, budget=budget, ttl_s=60) is None  # 0.30 held + 0.30 > 0.50

    await spend.settle(pool, first, Decimal("0.17"))

    assert await pool.fetchval("SELECT count(*) FROM spend_holds") == 0
    assert (await spend.totals(pool)).today == Decimal("0.17")
    second = await spend.hold(pool, WORST_CASE, budget=budget, ttl_s=60)  # 0.17 + 0.30 ≤ 0.50
    assert second is not None
    assert await spend.hold(pool, Decimal("0.04"), budget=budget, ttl_s=60) is None  # 0.17 + 0.30 + 0.04


async def test_an_expired_hold_stops_counting(pool: asyncpg.Pool) -> None:
    """A worker that died mid-call never settles: its hold blocks the budget only until it expires."""
    assert await spend.hold(pool, WORST_CASE, budget=Decimal("0.50"), ttl_s=60) is not None
    await pool.execute("UPDATE spend_holds SET expires_at = now() - interval '1 second'")

    assert await spend.hold(pool, Decimal("0.45"), budget=Decimal("0.50"), ttl_s=60) is not None


async def test_calls_without_a_budget_are_still_counted_today_and_this_month(pool: asyncpg.Pool) -> None:
    await spend.settle(pool, None, Decimal("0.25"))
    await spend.settle(pool, None, Decimal("0.10"))
    today = datetime.now(UTC).date()
    earlier = today.replace(day=1) if today.day > 1 else None
    if earlier is not None:  # a bill from earlier this month counts in the month, not today
        await pool.execute("INSERT INTO engine_spend (day, spent_usd) VALUES ($1, 1.00)", earlier)
    last_year = today - timedelta(days=400)
    await pool.execute("INSERT INTO engine_spend (day, spent_usd) VALUES ($1, 9.00)", last_year)

    totals = await spend.totals(pool)

    assert totals.today == Decimal("0.35")
    assert totals.month == Decimal("0.35") + (Decimal("1.00") if earlier else 0)


def test_the_budget_renews_at_midnight_utc() -> None:
    at = datetime(2026, 12, 3, 22, 30, tzinfo=UTC)
    assert spend.seconds_until_tomorrow(at) == 90 * 60
