"""The worker fleet as heartbeats describe it: who is alive, what each holds and has done."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

from services.monitor.aggregation.memory import MemoryTrend
from services.monitor.aggregation.snapshot import moment
from shared.events import Event, Payload, ProcessUsage, WorkerHeartbeat, WorkerStopped

WorkerStatus = Literal["active", "stale", "stopped"]


class Heartbeating(Protocol):
    last_seen: float
    interval_s: float
    stopped_at: float | None


S = TypeVar("S", bound=Heartbeating)


class Registry(Generic[S]):
    """Instances known by their heartbeats, workers and api instances alike: one is active while its last
    heartbeat is younger than `stale_factor` of its own interval, stopped once it said so.

    Times are the events' own (a backlog of old heartbeats replayed after a monitor restart proves
    nothing about now), never later than `now` (a clock running ahead cannot buy time). Instances
    silent for `forget_after` seconds are dropped, and at most `capacity` are kept.
    """

    def __init__(self, stale_factor: float, *, forget_after: float = 3600.0, capacity: int = 1000) -> None:
        self.stale_factor = stale_factor
        self.forget_after = forget_after
        self.capacity = capacity
        self._known: dict[str, S] = {}

    def _is_late(self, key: str, at: float) -> bool:
        """Whether a heartbeat seen `at` is older than what is known: an out-of-order delivery."""
        known = self._known.get(key)
        return known is not None and (at < known.last_seen or (known.stopped_at is not None and at <= known.stopped_at))

    def _prune(self, now: float) -> None:
        for key in [key for key, state in self._known.items() if now - state.last_seen > self.forget_after]:
            del self._known[key]
        while len(self._known) > self.capacity:
            del self._known[min(self._known, key=lambda key: self._known[key].last_seen)]

    def status(self, state: S, now: float) -> WorkerStatus:
        if state.stopped_at is not None:
            return "stopped"
        return "active" if now - state.last_seen <= self.stale_factor * state.interval_s else "stale"

    def active_count(self, now: float) -> int:
        return sum(1 for state in self._known.values() if self.status(state, now) == "active")

    def _listed(self) -> list[S]:
        """The live first, the most recently heard from first."""
        return sorted(self._known.values(), key=lambda s: (s.stopped_at is not None, -s.last_seen))


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
    process: ProcessUsage | None = None  # from workers that report it
    concurrency: int | None = None
    memory: MemoryTrend = field(default_factory=MemoryTrend)


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
    cpu_seconds: float | None
    rss_bytes: int | None
    saturation: float | None  # jobs in flight per engine process
    memory_growing: bool


class WorkerRegistry(Registry[WorkerState]):
    """The worker fleet: `worker.heartbeat` and `worker.stopped` events, by worker id."""

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
        if self._is_late(beat.worker_id, at):
            return
        known = self._known.get(beat.worker_id)
        memory = known.memory if known is not None else MemoryTrend()
        if beat.process is not None:
            memory.add(beat.process.rss_bytes)
        self._known[beat.worker_id] = WorkerState(
            beat.worker_id,
            beat.host,
            beat.started_at,
            at,
            beat.interval_s,
            beat.in_flight,
            beat.processed,
            beat.failed,
            process=beat.process,
            concurrency=beat.concurrency,
            memory=memory,
        )

    def _stopped(self, stop: WorkerStopped, at: float) -> None:
        known = self._known.get(stop.worker_id)
        if known is None:
            return
        known.stopped_at, known.in_flight = at, 0
        known.processed, known.failed = stop.processed, stop.failed

    def views(self, now: float) -> list[WorkerView]:
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
                s.process.cpu_seconds if s.process else None,
                s.process.rss_bytes if s.process else None,
                round(s.in_flight / s.concurrency, 2) if s.concurrency else None,
                s.memory.growing,
            )
            for s in self._listed()
        ]
