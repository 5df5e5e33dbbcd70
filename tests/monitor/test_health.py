"""The health verdict: what makes the system unhealthy, and what only degrades it."""

from __future__ import annotations

from dataclasses import replace

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.snapshot import moment
from services.monitor.alerting.alerts import Alert
from services.monitor.alerting.health import assess
from services.monitor.alerting.rules import Observation

NOW = 1_800_000_000.0
OK = Observation(
    at=NOW,
    dependencies={"database": True, "broker": True},
    queue_depth=0,
    jobs_waiting=0,
    estimated_active=1,
    stats=Aggregator().snapshot(NOW),
)


def judge(
    observation: Observation | None, alerts: list[Alert] | None = None, now: float = NOW
) -> tuple[str, list[str]]:
    verdict = assess(observation, alerts or [], now=now, stale_after=15, depth_threshold=50)
    return verdict.status, verdict.reasons


def test_healthy() -> None:
    assert judge(OK) == ("healthy", [])
    assert assess(OK, [], now=NOW, stale_after=15, depth_threshold=50).http_status == 200


def test_a_dependency_down_is_unhealthy_and_503() -> None:
    down = replace(OK, dependencies={"database": False, "broker": True})
    assert judge(down) == ("unhealthy", ["database unhealthy"])
    assert assess(down, [], now=NOW, stale_after=15, depth_threshold=50).http_status == 503


def test_stalled_checks_are_unhealthy() -> None:
    status, reasons = judge(OK, now=NOW + 16)
    assert status == "unhealthy" and reasons[0].startswith("checks stalled")
    assert judge(None)[0] == "unhealthy"


def test_work_waiting_without_a_worker_degrades() -> None:
    assert judge(replace(OK, jobs_waiting=3, estimated_active=0)) == (
        "degraded",
        ["3 jobs waiting and no active worker"],
    )
    assert judge(replace(OK, jobs_waiting=0, estimated_active=0)) == ("healthy", [])


def test_a_deep_queue_degrades() -> None:
    assert judge(replace(OK, queue_depth=51, jobs_waiting=51)) == ("degraded", ["queue depth 51 above 50"])


def test_a_firing_alert_degrades() -> None:
    alert = Alert("error_rate", "error_rate", "warning", "error rate 9%", 0.09, 0.05, moment(NOW))
    assert judge(OK, [alert]) == ("degraded", ["alert firing: error rate 9%"])
