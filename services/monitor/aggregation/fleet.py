"""The worker fleet as heartbeats describe it: who is alive, what each holds and has done."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.monitor.aggregation.snapshot import moment
from shared.events import Event, Payload, WorkerHeartbeat, WorkerStopped

WorkerStatus = Literal["active", "stale", "stopped"]


@dataclass
class WorkerState:
    worker_id: str
    host: str
    started_at: datetime
    last_seen: float
    interval_s: float
    in_flight: int = 0
    processed: int = 0
    failed: int = 0
    stopped_at: float | None = None


@dataclass(frozen=True)
class WorkerView:
    worker_id: str
    host: str
    status: WorkerStatus
    started_at: datetime
    last_seen: datetime
    seconds_since_seen: float
    in_flight: int
    processed: int
    failed: int


class WorkerRegistry:
    """A worker is active while its last heartbeat is younger than `stale_factor` of its own interval.

    Times are the events' own (a backlog of old heartbeats replayed after a monitor restart proves
    nothing about now), never later than `now` (a worker clock running ahead cannot buy time).
    Workers silent for `forget_after` seconds are dropped, and at most `capacity` are kept.
    """

    def __init__(self, stale_factor: float, *, forget_after: float = 3600.0, capacity: int = 1000) -> None:
        self.stale_factor = stale_factor
        self.forget_after = forget_after
        self.capacity = capacity
        self._workers: dict[str, WorkerState] = {}

    def apply(self, event: Event, payload: Payload, now: float) -> bool:
        """Take a worker event; False for any other event."""
        at = min(event.occurred_at.timestamp(), now)
        if isinstance(payload, WorkerHeartbeat):
            self._heartbeat(payload, at)
        elif isinstance(payload, WorkerStopped):
            self._stopped(payload, at)
        else:
            return False
        self._prune(now)
        return True

    def _heartbeat(self, beat: WorkerHeartbeat, at: float) -> None:
        known = self._workers.get(beat.worker_id)
        if known is not None and (at < known.last_seen or (known.stopped_at is not None and at <= known.stopped_at)):
            return  # late, out-of-order delivery
        self._workers[beat.worker_id] = WorkerState(
            beat.worker_id, beat.host, beat.started_at, at, beat.interval_s, beat.in_flight, beat.processed, beat.failed
        )

    def _stopped(self, stop: WorkerStopped, at: float) -> None:
        known = self._workers.get(stop.worker_id)
        if known is None:
            return
        known.stopped_at, known.in_flight = at, 0
        known.processed, known.failed = stop.processed, stop.failed

    def _prune(self, now: float) -> None:
        for worker_id in [w for w, s in self._workers.items() if now - s.last_seen > self.forget_after]:
            del self._workers[worker_id]
        while len(self._workers) > self.capacity:
            oldest = min(self._workers.values(), key=lambda s: s.last_seen)
            del self._workers[oldest.worker_id]

    def status(self, state: WorkerState, now: float) -> WorkerStatus:
        if state.stopped_at is not None:
            return "stopped"
        return "active" if now - state.last_seen <= self.stale_factor * state.interval_s else "stale"

    def active_count(self, now: float) -> int:
        return sum(1 for state in self._workers.values() if self.status(state, now) == "active")

    def views(self, now: float) -> list[WorkerView]:
        states = sorted(self._workers.values(), key=lambda s: (s.stopped_at is not None, -s.last_seen))
        return [
            WorkerView(
                s.worker_id,
                s.host,
                self.status(s, now),
                s.started_at,
                moment(s.last_seen),
                round(now - s.last_seen, 2),
                s.in_flight,
                s.processed,
                s.failed,
            )
            for s in states
        ]
