"""The paid engine's spend against its daily cap: what the dashboard, /metrics and the spend alert read."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.spend import Spend

# Warn with a fifth of the day's budget left: room to react before workers start refusing the paid engine.
WARNING_SHARE = 0.8
SpendStatus = Literal["no_cap", "ok", "approaching", "over"]


@dataclass(frozen=True)
class PaidSpend:
    """US dollars billed today (UTC) and this month, and today's share of OPENAI_DAILY_BUDGET_USD."""

    today_usd: Decimal
    month_usd: Decimal
    daily_budget_usd: Decimal | None  # None: no cap
    share_of_budget: float | None  # today / cap; None without a cap
    status: SpendStatus


def share(spent: Decimal, budget: Decimal | None) -> float | None:
    return None if budget is None else float(spent / budget)


def status_of(share_of_budget: float | None) -> SpendStatus:
    if share_of_budget is None:
        return "no_cap"
    if share_of_budget >= 1:
        return "over"
    return "approaching" if share_of_budget >= WARNING_SHARE else "ok"


def paid_spend(spend: Spend, budget: Decimal | None) -> PaidSpend:
    used = share(spend.today, budget)
    return PaidSpend(spend.today, spend.month, budget, used, status_of(used))
