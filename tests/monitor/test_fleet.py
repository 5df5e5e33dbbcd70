"""The worker registry: heartbeats make a worker active, silence makes it stale, a stop event removes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.alerting.checker import estimated_active
from shared.domain import Tier
from shared.events import Event, JobCanceled, WorkerHeartbeat, WorkerStopped, make_event

NOW = 1_800_000_000.0
STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def beat(worker: str, at: float, *, interval: float = 5.0, processed: int = 0) -> Event:
    event = make_event(
        WorkerHeartbeat(
            worker_id=worker,
            host="box",
            started_at=STARTED,
            in_flight=1,
            processed=processed,
            failed=0,
            interval_s=interval,
        )
    )
    return event.model_copy(update={"occurred_at": datetime.fromtimestamp(at, UTC)})


def stopped(worker: str, at: float) -> Event:
    event = make_event(WorkerStopped(worker_id=worker, host="box", processed=7, failed=1))
    return event.model_copy(update={"occurred_at": datetime.fromtimestamp(at, UTC)})


def apply(registry: WorkerRegistry, event: Event, now: float) -> bool:
    return registry.apply(event, event.payload(), now)


def test_active_within_the_stale_factor_of_its_own_interval() -> None:
    registry = WorkerRegistry(stale_factor=3)
    apply(registry, beat("a", NOW, interval=5), NOW)
    apply(registry, beat("b", NOW, interval=1), NOW)
    assert registry.active_count(NOW + 2.9) == 2
    assert registry.active_count(NOW + 3.1) == 1  # b's 3 s are up, a's 15 s are not
    assert [v.status for v in registry.views(NOW + 3.1)] == ["active", "stale"]
    assert registry.active_count(NOW + 15.1) == 0


def test_a_stop_event_drops_the_worker_at_once() -> None:
    registry = WorkerRegistry(stale_factor=3)
    apply(registry, beat("a", NOW), NOW)
    apply(registry, stopped("a", NOW + 1), NOW + 1)
    assert registry.active_count(NOW + 1) == 0
    [view] = registry.views(NOW + 1)
    assert (view.status, view.processed, view.failed, view.in_flight) == ("stopped", 7, 1, 0)
    apply(registry, beat("a", NOW + 0.5), NOW + 2)  # a heartbeat delivered late changes nothing
    assert registry.active_count(NOW + 2) == 0


def test_old_heartbeats_from_a_backlog_prove_nothing() -> None:
    registry = WorkerRegistry(stale_factor=3)
    apply(registry, beat("a", NOW - 600, processed=3), NOW)
    assert registry.active_count(NOW) == 0
    apply(registry, beat("a", NOW + 30), NOW)  # a clock running ahead is clamped to now
    assert registry.views(NOW)[0].seconds_since_seen == 0


def test_silent_workers_are_forgotten_and_the_registry_is_bounded() -> None:
    registry = WorkerRegistry(stale_factor=3, forget_after=60, capacity=3)
    for i in range(5):
        apply(registry, beat(f"w{i}", NOW + i), NOW + i)
    assert [v.worker_id for v in registry.views(NOW + 5)] == ["w4", "w3", "w2"]
    apply(registry, beat("late", NOW + 100), NOW + 100)
    assert [v.worker_id for v in registry.views(NOW + 100)] == ["late"]


def test_only_worker_events_are_taken() -> None:
    registry = WorkerRegistry(stale_factor=3)
    assert apply(registry, beat("a", NOW), NOW)
    canceled = make_event(JobCanceled(tier=Tier.FREE), job_id=uuid.uuid4())
    assert not registry.apply(canceled, canceled.payload(), NOW)


def test_the_brokers_consumer_count_caps_the_estimate() -> None:
    assert estimated_active(2, None) == 2  # the broker did not answer: heartbeats alone
    assert estimated_active(2, 1) == 1  # one worker beats but lost its consumer
    assert estimated_active(0, 3) == 0  # consumers without heartbeats are not proof of life either
