"""The Sentry span budget: the guide's formula, its example, and the advised sample rate."""

from __future__ import annotations

import pytest

from services.monitor.aggregation.budget import advised_rate, estimate, jobs_per_month


def test_the_guides_example() -> None:
    # "100K requests × 5 × 0.05 = 25K spans (free!)"
    budget = estimate(jobs_month=100_000, requests_per_job=1, spans_per_request=5, sample_rate=0.05, free_spans=100_000)
    assert budget.requests_per_month == 100_000
    assert budget.spans_per_month == 25_000
    assert budget.share_of_free == 0.25
    assert budget.status == "comfortable"
    assert budget.advised_sample_rate == 0.1  # 10 % keeps it at 50K, under 80 % of the free tier
    assert "could go up to 0.1" in budget.advice


def test_over_budget_advises_a_lower_rate() -> None:
    budget = estimate(jobs_month=200_000, requests_per_job=5, spans_per_request=5, sample_rate=0.05, free_spans=100_000)
    assert budget.spans_per_month == 250_000
    assert budget.status == "over"
    assert budget.advised_sample_rate == 0.01  # 5M spans at 100 %: 1 % is 50K, 2 % would be 100K
    assert "SENTRY_TRACES_SAMPLE_RATE=0.01" in budget.advice


def test_approaching_the_limit() -> None:
    budget = estimate(jobs_month=17_000, requests_per_job=1, spans_per_request=5, sample_rate=1.0, free_spans=100_000)
    assert budget.status == "approaching"


@pytest.mark.parametrize(
    ("requests", "expected"), [(0, 1.0), (10_000, 1.0), (100_000, 0.1), (1_000_000, 0.01), (10**9, 0.0)]
)
def test_advised_rate_stays_under_80_percent(requests: float, expected: float) -> None:
    assert advised_rate(requests, 5, 100_000) == expected


def test_no_traffic_keeps_the_current_rate() -> None:
    budget = estimate(jobs_month=0, requests_per_job=5, spans_per_request=5, sample_rate=0.05, free_spans=100_000)
    assert (budget.status, budget.advised_sample_rate) == ("no_traffic", 0.05)


def test_jobs_per_month_extrapolates_at_least_an_hour() -> None:
    assert jobs_per_month(10, 3600) == pytest.approx(7300)
    assert jobs_per_month(10, 60) == pytest.approx(7300)  # ten jobs in a minute is not 438K a month
    assert jobs_per_month(30_000, 30 * 86_400) == pytest.approx(30_000 * 730 / 720)
