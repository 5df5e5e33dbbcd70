"""The aggregator as a pure class: steps in, windows, rates, percentiles and counts out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.steps import Kind, Step, from_event
from shared.domain import JobStatus, Style, Tier
from shared.events import JobQueued, JobStarted, JobSucceeded, WorkerHeartbeat, make_event

NOW = 1_800_000_000.0  # a fixed "now", on a minute boundary


def finished(
    end_to_end: float,
    *,
    at: float = NOW - 5,
    tier: Tier = Tier.FREE,
    kind: Kind = Kind.SUCCEEDED,
    processing: float | None = None,
    error: str | None = None,
    job_id: uuid.UUID | None = None,
) -> Step:
    started = at - processing if processing is not None else None
    return Step(
        kind, job_id or uuid.uuid4(), tier, 1, at, queued_at=at - end_to_end, started_at=started, error_code=error
    )


def test_percentiles_match_a_known_distribution() -> None:
    aggregator = Aggregator()
    for seconds in range(1, 1001):  # 1..1000 s, uniformly
        aggregator.record(finished(float(seconds), processing=seconds / 10), NOW)
    latency = aggregator.snapshot(NOW).windows["1m"].latency
    e2e, processing = latency["end_to_end"]["all"], latency["processing"]["all"]
    assert e2e.count == 1000
    # DDSketch's guarantee is 1 % relative error on the true rank-based quantile.
    assert e2e.p50 == pytest.approx(500, rel=0.01)
    assert e2e.p95 == pytest.approx(950, rel=0.01)
    assert e2e.p99 == pytest.approx(990, rel=0.01)
    assert processing.p95 == pytest.approx(95.0, rel=0.01)


def test_percentiles_per_tier_and_overall() -> None:
    aggregator = Aggregator()
    for seconds in range(1, 101):
        aggregator.record(finished(float(seconds), tier=Tier.FREE), NOW)
        aggregator.record(finished(seconds * 100.0, tier=Tier.PREMIUM), NOW)
    latency = aggregator.snapshot(NOW).windows["5m"].latency["end_to_end"]
    assert latency["free"].count == latency["premium"].count == 100
    assert latency["free"].p50 == pytest.approx(50, rel=0.01)
    assert latency["premium"].p50 == pytest.approx(5000, rel=0.01)
    assert latency["all"].count == 200
    assert latency["all"].p99 == pytest.approx(9800, rel=0.01)


def test_windows_roll_over_time() -> None:
    aggregator = Aggregator()
    for age in (30, 200, 2000, 4000):
        aggregator.record(finished(1.0, at=NOW - age), NOW)
    windows = aggregator.snapshot(NOW).windows
    assert [windows[w].succeeded for w in ("1m", "5m", "1h")] == [1, 2, 3]
    later = aggregator.snapshot(NOW + 300).windows
    assert [later[w].succeeded for w in ("1m", "5m", "1h")] == [0, 0, 3]


def test_rates_and_errors_by_code() -> None:
    aggregator = Aggregator()
    for _ in range(8):
        aggregator.record(finished(2.0), NOW)
    aggregator.record(finished(2.0, kind=Kind.FAILED, error="engine_timeout"), NOW)
    aggregator.record(finished(2.0, kind=Kind.FAILED, error="asset_missing"), NOW)
    aggregator.record(Step(Kind.RETRYING, uuid.uuid4(), Tier.FREE, 1, NOW - 1, error_code="engine_timeout"), NOW)
    hour = aggregator.snapshot(NOW).windows["1h"]
    assert (hour.succeeded, hour.failed, hour.retried) == (8, 2, 1)
    assert hour.success_rate == 0.8
    assert hour.failure_rate == 0.2
    assert hour.error_rate == pytest.approx(3 / 11, abs=1e-4)
    assert hour.errors_by_code == {"engine_timeout": 2, "asset_missing": 1}
    assert hour.throughput_per_min == pytest.approx(10 / 60, abs=1e-3)
    assert aggregator.snapshot(NOW).windows["1m"].throughput_per_min == 10.0


def test_a_step_counts_once_whether_redelivered_or_replayed() -> None:
    aggregator = Aggregator()
    step = finished(3.0)
    assert aggregator.record(step, NOW, replayed=True)
    assert not aggregator.record(step, NOW)
    assert not aggregator.record(step, NOW)
    assert aggregator.snapshot(NOW).windows["1h"].succeeded == 1
    assert aggregator.duplicates == 2
    assert sum(aggregator.totals.values()) == 0  # replayed steps stay out of the Prometheus counters


def test_queue_wait_counts_first_attempts_and_processing_uses_the_seen_start() -> None:
    aggregator, job = Aggregator(), uuid.uuid4()
    aggregator.record(Step(Kind.STARTED, job, Tier.FREE, 1, NOW - 10, queued_at=NOW - 13), NOW)
    aggregator.record(Step(Kind.RETRYING, job, Tier.FREE, 1, NOW - 8, error_code="engine_timeout"), NOW)
    aggregator.record(Step(Kind.STARTED, job, Tier.FREE, 2, NOW - 4, queued_at=NOW - 13), NOW)
    aggregator.record(Step(Kind.SUCCEEDED, job, Tier.FREE, 2, NOW - 1, queued_at=NOW - 13, processing_s=99), NOW)
    latency = aggregator.snapshot(NOW).windows["1m"].latency
    assert latency["queue_wait"]["all"].count == 1
    assert latency["queue_wait"]["all"].p50 == pytest.approx(3.0, rel=0.01)
    assert latency["processing"]["all"].p50 == pytest.approx(3.0, rel=0.01)  # not the worker's 99 s
    assert latency["end_to_end"]["all"].p50 == pytest.approx(12.0, rel=0.01)


def test_processing_falls_back_to_the_workers_measure() -> None:
    aggregator = Aggregator()
    step = Step(Kind.SUCCEEDED, uuid.uuid4(), Tier.PREMIUM, 1, NOW - 1, queued_at=NOW - 20, processing_s=7.5)
    aggregator.record(step, NOW)
    assert aggregator.snapshot(NOW).windows["1m"].latency["processing"]["premium"].p50 == pytest.approx(7.5, rel=0.01)


def test_status_counts_follow_events_until_the_database_replaces_them() -> None:
    aggregator, job = Aggregator(), uuid.uuid4()
    aggregator.reconcile({(JobStatus.SUCCEEDED, Tier.FREE): 5})
    for kind in (Kind.QUEUED, Kind.STARTED):
        aggregator.record(Step(kind, job, Tier.FREE, 0 if kind is Kind.QUEUED else 1, NOW - 2, queued_at=NOW - 3), NOW)
    assert aggregator.snapshot(NOW).jobs == {"queued": 0, "processing": 1, "succeeded": 5, "failed": 0, "canceled": 0}
    aggregator.record(finished(2.0, job_id=job), NOW)
    assert aggregator.snapshot(NOW).jobs["succeeded"] == 6
    assert aggregator.snapshot(NOW).jobs_by_tier["free"]["processing"] == 0
    aggregator.reconcile({(JobStatus.SUCCEEDED, Tier.FREE): 6, (JobStatus.FAILED, Tier.PREMIUM): 1})
    assert aggregator.snapshot(NOW).jobs == {"queued": 0, "processing": 0, "succeeded": 6, "failed": 1, "canceled": 0}


def test_series_has_one_point_per_minute_of_the_last_hour() -> None:
    aggregator = Aggregator()
    for seconds in range(1, 20):
        aggregator.record(finished(float(seconds), at=NOW - 30), NOW)
    aggregator.record(finished(20.0, at=NOW - 40, kind=Kind.FAILED, error="x"), NOW)
    series = aggregator.snapshot(NOW).series
    assert len(series) == 60
    assert series[-1].start == datetime.fromtimestamp(NOW, UTC)
    point = series[-2]  # the minute before the current one
    assert (point.succeeded, point.failed) == (19, 1)
    assert point.p50 == pytest.approx(10.0, rel=0.01)
    assert point.p95 == pytest.approx(19.0, rel=0.01)
    assert sum(p.succeeded for p in series) == 19


def test_memory_stays_bounded_however_many_events_arrive() -> None:
    aggregator = Aggregator(memory=1000)
    moment = NOW
    for i in range(20_000):  # about 5.5 hours of traffic at one job a second
        moment = NOW + i
        aggregator.record(finished(float(i % 50 + 1), at=moment), moment)
    assert len(aggregator.fine) <= 31
    assert len(aggregator.coarse) <= 61
    assert aggregator.remembered == 1000
    assert aggregator.snapshot(moment).windows["1h"].succeeded == pytest.approx(3600, abs=60)


def test_steps_from_events_carry_what_the_payload_says() -> None:
    queued_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    job = uuid.uuid4()
    queued = make_event(JobQueued(asset_id=uuid.uuid4(), tier=Tier.PREMIUM, style=Style.DUSK, prompt="p"), job_id=job)
    started = make_event(JobStarted(worker_id="w", tier=Tier.PREMIUM, attempt=1, queued_at=queued_at), job_id=job)
    done = make_event(
        JobSucceeded(
            worker_id="w",
            tier=Tier.PREMIUM,
            attempt=1,
            output_key="k",
            width=1,
            height=1,
            cost=0,
            engine="local",
            processing_ms=1500.0,
            queued_at=queued_at,
        ),
        job_id=job,
    )
    steps = [from_event(event, event.payload()) for event in (queued, started, done)]
    assert [f.kind for f in steps if f] == [Kind.QUEUED, Kind.STARTED, Kind.SUCCEEDED]
    assert steps[2] is not None and steps[2].processing_s == 1.5 and steps[2].queued_at == queued_at.timestamp()
    beat = make_event(
        WorkerHeartbeat(worker_id="w", host="h", started_at=queued_at, in_flight=0, processed=0, failed=0, interval_s=5)
    )
    assert from_event(beat, beat.payload()) is None


def test_pollers_may_share_a_snapshot_younger_than_their_max_age() -> None:
    aggregator = Aggregator()
    first = aggregator.snapshot(NOW, max_age=1.0)
    aggregator.record(finished(2.0), NOW)
    assert aggregator.snapshot(NOW + 0.5, max_age=1.0) is first
    assert aggregator.snapshot(NOW + 0.5).windows["1m"].succeeded == 1  # without a max age: built afresh
    assert aggregator.snapshot(NOW + 1.6, max_age=1.0).windows["1m"].succeeded == 1
