"""The api as the monitor sees it: instances alive or not from their heartbeats, and the traffic they report
merged into windows, error rates and percentiles exact to the sketch's 1 %."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.api.traffic import Traffic
from services.monitor.aggregation.apis import ApiWatch
from services.monitor.aggregation.memory import SAMPLES, MemoryTrend
from shared.events import ApiHeartbeat, ApiStopped, Event, ProcessUsage, RouteTraffic, make_event

NOW = 1_800_000_000.0
STARTED = datetime(2026, 1, 1, tzinfo=UTC)
JOB = "/jobs/{job_id}"


def heartbeat(instance: str, at: float, routes: list[RouteTraffic] | None = None, *, rss: int = 10**8) -> Event:
    payload = ApiHeartbeat(
        instance_id=instance,
        host="box",
        version="1.0.0",
        started_at=STARTED,
        interval_s=10.0,
        process=ProcessUsage(cpu_seconds=1.0, rss_bytes=rss),
        routes=routes or [],
    )
    return make_event(payload).model_copy(update={"occurred_at": datetime.fromtimestamp(at, UTC)})


def stopped(instance: str, at: float) -> Event:
    event = make_event(ApiStopped(instance_id=instance, host="box"))
    return event.model_copy(update={"occurred_at": datetime.fromtimestamp(at, UTC)})


def traffic(answers: list[tuple[str, int, float]]) -> list[RouteTraffic]:
    """What an api instance's tally reports for these (route, status, seconds) answers."""
    tally = Traffic()
    for route, status, seconds in answers:
        tally.record(route, status, seconds)
    return tally.take()


def apply(watch: ApiWatch, event: Event, now: float = NOW) -> bool:
    return watch.apply(event, event.payload(), now)


def test_an_instance_is_active_until_its_heartbeats_stop_or_it_says_it_stopped() -> None:
    watch = ApiWatch.create(stale_factor=3)
    assert not watch.registry.ever_seen and watch.registry.active_count(NOW) == 0
    apply(watch, heartbeat("a", NOW - 5))
    apply(watch, heartbeat("b", NOW - 5))
    assert watch.registry.ever_seen and watch.registry.active_count(NOW) == 2
    assert watch.registry.active_count(NOW + 25) == 2  # within 3 intervals of 10 s
    assert watch.registry.active_count(NOW + 26) == 0  # stale: killed, not stopped
    apply(watch, stopped("a", NOW))
    assert [(v.instance_id, v.status) for v in watch.registry.views(NOW)] == [("b", "active"), ("a", "stopped")]


def test_a_late_heartbeat_does_not_revive_a_stopped_instance_but_its_traffic_counts() -> None:
    watch = ApiWatch.create(stale_factor=3)
    apply(watch, heartbeat("a", NOW - 20))
    apply(watch, stopped("a", NOW - 10))
    apply(watch, heartbeat("a", NOW - 15, traffic([("/health", 200, 0.001)])))
    assert watch.registry.active_count(NOW) == 0
    assert watch.traffic.windows(NOW)["1m"].requests == 1


def test_windows_merge_every_instance_and_interval_into_one_distribution() -> None:
    watch = ApiWatch.create(stale_factor=3)
    # Instance a answers fast, instance b slowly: the window's percentiles are of all 200 requests together.
    apply(watch, heartbeat("a", NOW - 30, traffic([(JOB, 200, 0.010)] * 100)))
    apply(watch, heartbeat("b", NOW - 20, traffic([(JOB, 200, 1.0)] * 90 + [(JOB, 503, 1.0)] * 10)))
    apply(watch, heartbeat("b", NOW - 10, traffic([("/jobs", 400, 0.002)] * 50)))

    window = watch.traffic.windows(NOW)["1m"]
    assert window.requests == 250 and window.requests_per_min == 250.0
    assert window.error_rate == pytest.approx(10 / 250) and window.client_error_rate == pytest.approx(50 / 250)
    job = window.routes[JOB]
    assert (job.requests, job.server_errors, job.client_errors) == (200, 10, 0)
    assert job.latency.p50 == pytest.approx(0.010, rel=0.02)  # the 100th of 200 values: a's
    assert job.latency.p95 == pytest.approx(1.0, rel=0.02)
    assert window.latency.count == 250


def test_old_traffic_leaves_the_short_windows_and_stays_in_the_hour() -> None:
    watch = ApiWatch.create(stale_factor=3)
    apply(watch, heartbeat("a", NOW - 600, traffic([(JOB, 500, 0.1)] * 4)), now=NOW - 600)
    windows = watch.traffic.windows(NOW)
    assert windows["1m"].requests == windows["5m"].requests == 0 and windows["1m"].error_rate is None
    assert windows["1h"].requests == 4 and windows["1h"].error_rate == 1.0


def test_a_heartbeat_delivered_twice_counts_once() -> None:
    watch = ApiWatch.create(stale_factor=3)
    event = heartbeat("a", NOW - 5, traffic([(JOB, 200, 0.1)] * 3))
    apply(watch, event)
    apply(watch, event)
    assert watch.traffic.windows(NOW)["5m"].requests == 3


def test_a_heartbeat_whose_sketch_is_not_one_is_refused_whole() -> None:
    watch = ApiWatch.create(stale_factor=3)
    good, bad = traffic([(JOB, 200, 0.1)]), RouteTraffic(route="/x", statuses={"2xx": 5}, latency_sketch="AAAA")
    with pytest.raises(ValueError, match="not a latency sketch"):
        apply(watch, heartbeat("a", NOW - 5, [*good, bad]))
    assert watch.traffic.windows(NOW)["5m"].requests == 0
    assert not watch.registry.ever_seen


def test_memory_that_keeps_growing_is_flagged_and_a_plateau_is_not() -> None:
    trend = MemoryTrend()
    for rss in range(100, 100 + SAMPLES * 2, 2):
        trend.add(rss * 10**6)
    assert trend.growing
    plateau = MemoryTrend()
    for rss in [100, 120, 140, 160, 180, 180, 180, 180, 179, 180, 180, 181]:
        plateau.add(rss * 10**6)
    assert not plateau.growing  # it fell once: not a leak's shape
    young = MemoryTrend()
    for rss in (100, 200, 300):
        young.add(rss)
    assert not young.growing  # too few beats to say


def test_an_instance_view_carries_its_process_usage_and_memory_trend() -> None:
    watch = ApiWatch.create(stale_factor=3)
    for n in range(SAMPLES):
        apply(watch, heartbeat("a", NOW - 100 + n, rss=(100 + 5 * n) * 10**6))
    [view] = watch.registry.views(NOW)
    assert (view.cpu_seconds, view.rss_bytes, view.memory_growing) == (1.0, 155 * 10**6, True)
