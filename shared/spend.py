"""The paid engine's spend per UTC day, shared by every worker through PostgreSQL.

A call holds its worst-case cost before it starts (`hold`) and settles what it was billed once it is
over (`settle`). The check against the budget and the hold happen under one lock on the day's ledger
row, so workers calling at the same moment cannot overshoot the budget together. A worker that dies
mid-call leaves its hold behind; the hold stops counting when it expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg

from shared.db import Queryable

_TODAY = "(now() AT TIME ZONE 'UTC')::date"


@dataclass(frozen=True)
class Hold:
    id: uuid.UUID
    day: date
    amount: Decimal


@dataclass(frozen=True)
class Spend:
    """US dollars billed by the paid engine: today (UTC) and this calendar month so far."""

    today: Decimal
    month: Decimal


async def hold(pool: asyncpg.Pool, amount: Decimal, *, budget: Decimal, ttl_s: float) -> Hold | None:
    """Hold `amount` against today's budget; None when today's spend and holds leave no room for it."""
    async with pool.acquire() as connection, connection.transaction():
        day: date = await connection.fetchval(
            f"INSERT INTO engine_spend (day) VALUES ({_TODAY}) "
            "ON CONFLICT (day) DO UPDATE SET day = EXCLUDED.day RETURNING day"
        )
        # The upsert locked the day's row: every other worker's hold for today waits here until we commit.
        await connection.execute("DELETE FROM spend_holds WHERE day < $1", day)  # a dead worker's, long expired
        committed = await connection.fetchval(
            """
            SELECT s.spent_usd + coalesce(
                (SELECT sum(h.amount_usd) FROM spend_holds h WHERE h.day = s.day AND h.expires_at > now()), 0)
            FROM engine_spend s WHERE s.day = $1
            """,
            day,
        )
        if committed + amount > budget:
            return None
        held = Hold(uuid.uuid4(), day, amount)
        await connection.execute(
            "INSERT INTO spend_holds (id, day, amount_usd, expires_at) "
            "VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            held.id,
            day,
            amount,
            ttl_s,
        )
        return held


async def settle(connection: Queryable, held: Hold | None, cost: Decimal) -> None:
    """Release the call's hold (if it had one) and add what it was billed to the day it was held on."""
    await connection.execute(
        f"""
        WITH released AS (DELETE FROM spend_holds WHERE id = $1)
        INSERT INTO engine_spend (day, spent_usd) VALUES (coalesce($2, {_TODAY}), $3)
        ON CONFLICT (day) DO UPDATE SET spent_usd = engine_spend.spent_usd + EXCLUDED.spent_usd
        """,
        held.id if held else None,
        held.day if held else None,
        cost,
    )


async def totals(connection: Queryable) -> Spend:
    row = await connection.fetchrow(
        f"""
        SELECT coalesce(sum(spent_usd) FILTER (WHERE day = {_TODAY}), 0) AS today,
               coalesce(sum(spent_usd), 0) AS month
        FROM engine_spend WHERE day >= date_trunc('month', {_TODAY})::date
        """
    )
    assert row is not None
    return Spend(today=row["today"], month=row["month"])


def seconds_until_tomorrow(now: datetime | None = None) -> float:
    """When today's budget is renewed: the next midnight, UTC."""
    now = now or datetime.now(UTC)
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return (tomorrow - now).total_seconds()
