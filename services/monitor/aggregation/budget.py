"""The Sentry span budget: the deployment guide's formula on observed traffic, and the sample rate to use.

spans / month = requests / month x spans per request x sample rate
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HOURS_PER_MONTH = 730.0  # 8760 / 12
MIN_OBSERVED_S = 3600.0  # extrapolating from minutes of traffic says more about luck than load
# The guide's own steps (10 %, 5 %, 2 %) among others, so advice reads as a setting to type in.
RATE_LADDER = (1.0, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
TARGET_SHARE = 0.8  # the guide: "if spans > 80K/month (approaching limit)" lower the rate
LOW_SHARE = 0.5  # the guide: "if spans < 50K/month (well under limit)" it may go up
BudgetStatus = Literal["no_traffic", "comfortable", "ok", "approaching", "over"]


@dataclass(frozen=True)
class SpanBudget:
    jobs_per_month: float
    requests_per_month: float
    spans_per_month: float
    sample_rate: float
    free_spans: int
    share_of_free: float
    advised_sample_rate: float
    status: BudgetStatus
    advice: str


def jobs_per_month(jobs: int, observed_s: float) -> float:
    """Extrapolate `jobs` seen over `observed_s` seconds (at least an hour's worth) to a month."""
    return jobs / max(observed_s, MIN_OBSERVED_S) * 3600 * HOURS_PER_MONTH


def advised_rate(requests_per_month: float, spans_per_request: float, free_spans: int) -> float:
    """The largest ladder rate that keeps the month under TARGET_SHARE of the free tier."""
    spans_at_full = requests_per_month * spans_per_request
    if spans_at_full <= 0:
        return RATE_LADDER[0]
    exact = TARGET_SHARE * free_spans / spans_at_full
    return next((rate for rate in RATE_LADDER if rate <= exact), 0.0)


def _status(share: float) -> BudgetStatus:
    if share > 1:
        return "over"
    if share > TARGET_SHARE:
        return "approaching"
    return "comfortable" if share < LOW_SHARE else "ok"


def _advice(status: BudgetStatus, sample_rate: float, advised: float, free_spans: int) -> str:
    if status == "no_traffic":
        return f"No traffic observed yet; keep SENTRY_TRACES_SAMPLE_RATE={sample_rate:g}."
    if status in ("over", "approaching"):
        return (
            f"Set SENTRY_TRACES_SAMPLE_RATE={advised:g} to stay under {TARGET_SHARE:.0%} of the "
            f"{free_spans:,} free spans, or budget for the paid plan."
        )
    if status == "comfortable" and advised > sample_rate:
        return f"Well under the free tier: SENTRY_TRACES_SAMPLE_RATE could go up to {advised:g} for more visibility."
    return f"Within budget at SENTRY_TRACES_SAMPLE_RATE={sample_rate:g}."


def estimate(
    *, jobs_month: float, requests_per_job: float, spans_per_request: float, sample_rate: float, free_spans: int
) -> SpanBudget:
    requests = jobs_month * requests_per_job
    spans = requests * spans_per_request * sample_rate
    share = spans / free_spans
    advised = advised_rate(requests, spans_per_request, free_spans)
    status: BudgetStatus = "no_traffic" if requests == 0 else _status(share)
    return SpanBudget(
        jobs_per_month=round(jobs_month, 1),
        requests_per_month=round(requests, 1),
        spans_per_month=round(spans, 1),
        sample_rate=sample_rate,
        free_spans=free_spans,
        share_of_free=round(share, 4),
        advised_sample_rate=sample_rate if status == "no_traffic" else advised,
        status=status,
        advice=_advice(status, sample_rate, advised, free_spans),
    )
