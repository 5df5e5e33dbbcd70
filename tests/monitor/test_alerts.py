"""Alert rules as pure functions of an observation, and the engine's firing and resolved transitions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.apis import ApiWatch
from services.monitor.aggregation.http import HttpWindow
from services.monitor.aggregation.steps import Kind, Step
from services.monitor.alerting.alerts import AlertEngine
from services.monitor.alerting.rules import (
    DependencyDown,
    ErrorRate,
    FailureRate,
    LatencyP95,
    NoActiveWorker,
    NoApiInstance,
    Observation,
    PaidEngineSpend,
    QueueDepth,
    build_rules,
)
from services.monitor.alerting.webhook import text_of
from services.monitor.settings import MonitorSettings
from shared.domain import Tier
from shared.events import ApiHeartbeat, ProcessUsage, make_event
from tests.monitor.test_api_watch import traffic

NOW = 1_800_000_000.0


def observe(steps: Sequence[Step] = (), **fields: Any) -> Observation:
    aggregator = Aggregator()
    for step in steps:
        aggregator.record(step, NOW)
    base = Observation(
        at=NOW,
        dependencies={"database": True, "broker": True},
        queue_depth=0,
        jobs_waiting=0,
        estimated_active=1,
        stats=aggregator.snapshot(NOW),
    )
    return replace(base, **fields)


def outcomes(succeeded: int, failed: int = 0, retried: int = 0, *, wait: float = 0.5) -> list[Step]:
    steps = []
    for i in range(succeeded + failed):
        job, kind = uuid.uuid4(), Kind.SUCCEEDED if i < succeeded else Kind.FAILED
        steps.append(Step(Kind.STARTED, job, Tier.FREE, 1, NOW - 20, queued_at=NOW - 20 - wait))
        steps.append(Step(kind, job, Tier.FREE, 1, NOW - 10, queued_at=NOW - 20 - wait, error_code="engine_error"))
    steps += [
        Step(Kind.RETRYING, uuid.uuid4(), Tier.FREE, 1, NOW - 5, error_code="engine_timeout") for _ in range(retried)
    ]
    return steps


def http(answers: list[tuple[str, int, float]], *, window: str = "5m") -> dict[str, HttpWindow]:
    """The api's traffic over `window` as the monitor merges it from heartbeats: (route, status, seconds)."""
    watch = ApiWatch.create(stale_factor=3)
    beat = make_event(
        ApiHeartbeat(
            instance_id="api-1",
            host="box",
            version="1",
            started_at=datetime.fromtimestamp(NOW - 60, UTC),
            interval_s=10,
            process=ProcessUsage(cpu_seconds=1, rss_bytes=1),
            routes=traffic(answers),
        )
    )
    beat = beat.model_copy(update={"occurred_at": datetime.fromtimestamp(NOW - 5, UTC)})
    watch.apply(beat, beat.payload(), NOW)
    return watch.traffic.windows(NOW)


def test_error_rate_is_the_apis_5xx_share_and_needs_enough_requests() -> None:
    rule = ErrorRate(threshold=0.05, min_samples=10)
    assert rule.evaluate(observe(http=http([("/jobs", 200, 0.1)] * 19 + [("/jobs", 500, 0.1)]))) == []  # 5 %
    [finding] = rule.evaluate(observe(http=http([("/jobs", 200, 0.1)] * 18 + [("/jobs", 503, 0.1)] * 2)))
    assert finding.value == pytest.approx(0.1)
    assert "HTTP error rate 10.0% over 5m (2 of 20 requests answered 5xx)" in finding.summary
    assert rule.evaluate(observe(http=http([("/jobs", 500, 0.1)] * 9))) == []  # 9 requests < 10 samples
    # A client's mistakes are its own: 4xx answers are not the service failing.
    assert rule.evaluate(observe(http=http([("/jobs", 422, 0.1)] * 50))) == []
    # Job failures are not HTTP errors either (failure_rate judges them).
    assert rule.evaluate(observe(outcomes(3, failed=30))) == []


def test_failure_rate_over_its_window() -> None:
    rule = FailureRate(threshold=0.10, min_samples=10, window="1h")
    assert rule.evaluate(observe(outcomes(9, failed=1))) == []
    [finding] = rule.evaluate(observe(outcomes(8, failed=2)))
    assert finding.rule == "failure_rate" and finding.value == pytest.approx(0.2)


def test_latency_p95_is_the_apis_response_time_over_every_route() -> None:
    rule = LatencyP95(threshold_s=2.0, min_samples=10)
    fast = [("/jobs", 202, 0.05)] * 90
    assert rule.evaluate(observe(http=http([*fast, *[("/jobs/{job_id}", 200, 1.5)] * 10]))) == []
    [finding] = rule.evaluate(observe(http=http([*fast, *[("/jobs/{job_id}", 200, 3.0)] * 10])))
    assert finding.value == pytest.approx(3.0, rel=0.02)
    assert finding.summary.startswith("HTTP P95 response time 2.9") and "above 2 s" in finding.summary
    assert "slowest route: /jobs/{job_id}" in finding.summary
    assert rule.evaluate(observe(outcomes(20, wait=30.0))) == []  # a long queue wait is not a slow response


def test_no_api_instance_once_the_api_was_seen_and_none_is_alive() -> None:
    rule = NoApiInstance(checks=1)
    assert rule.evaluate(observe()) == []  # no api ever heard of: a monitor on its own
    assert rule.evaluate(observe(apis_seen=True, apis_active=1)) == []
    [finding] = rule.evaluate(observe(apis_seen=True, apis_active=0))
    assert finding.severity == "critical" and "no api instance is alive" in finding.summary


def test_queue_depth_gives_the_scale_up_advice() -> None:
    rule = QueueDepth(threshold=50, checks=3)
    assert rule.evaluate(observe(queue_depth=50)) == []
    [finding] = rule.evaluate(observe(queue_depth=51))
    assert "scale up the worker service" in finding.summary


def test_queue_depth_counts_the_jobs_held_back_for_fair_share() -> None:
    """One owner's backlog puts only its share in the queues; the rest, queued in PostgreSQL, needs workers too."""
    [finding] = QueueDepth(threshold=50, checks=1).evaluate(observe(queue_depth=20, jobs_waiting=1000))
    assert finding.value == 1000 and "1000 jobs waiting for a worker" in finding.summary


def test_no_active_worker_only_when_work_waits() -> None:
    rule = NoActiveWorker(checks=1)
    assert rule.evaluate(observe(jobs_waiting=0, estimated_active=0)) == []
    assert rule.evaluate(observe(jobs_waiting=3, estimated_active=1)) == []
    [finding] = rule.evaluate(observe(jobs_waiting=3, estimated_active=0))
    assert finding.severity == "critical"


def test_dependency_down_is_one_alert_per_dependency() -> None:
    findings = DependencyDown(checks=3).evaluate(observe(dependencies={"database": False, "broker": False}))
    assert [f.key for f in findings] == ["dependency_down:broker", "dependency_down:database"]


def test_engine_fires_after_consecutive_checks_and_resolves_once() -> None:
    engine = AlertEngine([DependencyDown(checks=3)], history_size=10)
    down, up = observe(dependencies={"database": False, "broker": True}), observe()
    assert engine.evaluate(down, NOW) == []
    assert engine.evaluate(down, NOW + 1) == []
    [fired] = engine.evaluate(down, NOW + 2)
    assert (fired.key, fired.state) == ("dependency_down:database", "firing")
    assert engine.evaluate(down, NOW + 3) == []  # still firing: no second transition
    assert [a.key for a in engine.active] == ["dependency_down:database"]
    [resolved] = engine.evaluate(up, NOW + 4)
    assert resolved.state == "resolved" and resolved.since == fired.at
    assert engine.active == [] and engine.evaluate(up, NOW + 5) == []
    assert [t.state for t in engine.history] == ["resolved", "firing"]


def test_a_broken_streak_starts_counting_again() -> None:
    engine = AlertEngine([QueueDepth(threshold=1, checks=2)])
    deep, shallow = observe(queue_depth=5), observe(queue_depth=0)
    engine.evaluate(deep, NOW)
    engine.evaluate(shallow, NOW + 1)
    assert engine.evaluate(deep, NOW + 2) == []
    assert len(engine.evaluate(deep, NOW + 3)) == 1


def test_an_active_alert_keeps_its_summary_current() -> None:
    engine = AlertEngine([QueueDepth(threshold=1, checks=1)])
    engine.evaluate(observe(queue_depth=5), NOW)
    engine.evaluate(observe(queue_depth=9), NOW + 1)
    assert engine.active[0].value == 9 and "9 jobs waiting" in engine.active[0].summary


def test_history_is_bounded() -> None:
    engine = AlertEngine([QueueDepth(threshold=1, checks=1)], history_size=4)
    for i in range(10):
        engine.evaluate(observe(queue_depth=5 if i % 2 == 0 else 0), NOW + i)
    assert len(engine.history) == 4


def test_rules_take_their_thresholds_from_settings() -> None:
    settings = MonitorSettings(
        alert_error_rate=0.2,
        alert_queue_depth=7,
        alert_consecutive_checks=4,
        alert_latency_p95_seconds=30,
    )
    rules = {rule.name: rule for rule in build_rules(settings)}
    assert set(rules) == {
        "error_rate",
        "latency_p95",
        "failure_rate",
        "queue_depth",
        "no_active_worker",
        "no_api_instance",
        "dependency_down",
        "paid_engine_spend",
    }
    assert rules["error_rate"] == ErrorRate(0.2, 10)
    assert rules["queue_depth"] == QueueDepth(7, 4)
    assert rules["latency_p95"] == LatencyP95(30, 10)
    assert rules["no_api_instance"] == NoApiInstance(4)
    assert rules["paid_engine_spend"] == PaidEngineSpend(None)  # no cap: it never fires


def test_webhook_text_is_slack_ready() -> None:
    engine = AlertEngine([NoActiveWorker(checks=1)])
    [fired] = engine.evaluate(observe(jobs_waiting=2, estimated_active=0), NOW)
    [resolved] = engine.evaluate(observe(), NOW + 120)
    assert text_of(fired, "production").startswith(":red_circle: [luster production] FIRING no_active_worker: 2 jobs")
    assert text_of(resolved, "production").endswith("(after 2.0 min)")
