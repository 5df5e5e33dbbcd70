"""The api instances as their heartbeats describe them: who is alive, which release, what each uses.

The same rules as the workers' (services/monitor/aggregation/fleet.py): times are the events' own, never
later than `now`; an instance silent for `forget_after` seconds is dropped, and at most `capacity` are kept.
A clean stop says so (`api.stopped`); a killed instance goes stale after `stale_factor` of its interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.monitor.aggregation.fleet import Registry, WorkerStatus
from services.monitor.aggregation.http import HttpTraffic
from services.monitor.aggregation.memory import MemoryTrend
from services.monitor.aggregation.snapshot import moment
from shared.events import ApiHeartbeat, ApiStopped, Event, Payload, ProcessUsage


@dataclass
class ApiState:
    instance_id: str
    host: str
    version: str
    started_at: datetime
    last_seen: float
    interval_s: float
    process: ProcessUsage
    stopped_at: float | None = None
    memory: MemoryTrend = field(default_factory=MemoryTrend)


@dataclass(frozen=True)
class ApiView:
    instance_id: str
    host: str
    version: str
    status: WorkerStatus
    started_at: datetime
    last_seen: datetime
    seconds_since_seen: float
    cpu_seconds: float
    rss_bytes: int
    memory_growing: bool


class ApiRegistry(Registry[ApiState]):
    """The api instances: `api.heartbeat` and `api.stopped` events, by instance id."""

    def __init__(self, stale_factor: float, *, forget_after: float = 3600.0, capacity: int = 1000) -> None:
        super().__init__(stale_factor, forget_after=forget_after, capacity=capacity)
        self.ever_seen = False  # kept when forgotten instances go: an hour-long outage still counts as one

    def heartbeat(self, beat: ApiHeartbeat, at: float, now: float) -> bool:
        """Take a heartbeat seen `at`; False when it is older than what is known (a late delivery)."""
        at = min(at, now)
        if self._is_late(beat.instance_id, at):
            return False
        self.ever_seen = True
        known = self._known.get(beat.instance_id)
        memory = known.memory if known is not None else MemoryTrend()
        memory.add(beat.process.rss_bytes)
        self._known[beat.instance_id] = ApiState(
            beat.instance_id, beat.host, beat.version, beat.started_at, at, beat.interval_s, beat.process, memory=memory
        )
        self._prune(now)
        return True

    def stopped(self, stop: ApiStopped, at: float, now: float) -> None:
        known = self._known.get(stop.instance_id)
        if known is not None:
            known.stopped_at = min(at, now)

    def views(self, now: float) -> list[ApiView]:
        return [
            ApiView(
                s.instance_id,
                s.host,
                s.version,
                self.status(s, now),
                s.started_at,
                moment(s.last_seen),
                round(now - s.last_seen, 2),
                s.process.cpu_seconds,
                s.process.rss_bytes,
                s.memory.growing,
            )
            for s in self._listed()
        ]


@dataclass
class ApiWatch:
    """What the monitor knows of the api: its instances, and the traffic they reported."""

    registry: ApiRegistry
    traffic: HttpTraffic

    @classmethod
    def create(cls, stale_factor: float) -> ApiWatch:
        return cls(ApiRegistry(stale_factor), HttpTraffic())

    def apply(self, event: Event, payload: Payload, now: float) -> bool:
        """Take an api event; False for any other event. A heartbeat's traffic counts even when it arrives
        after a newer one (it is still what was answered); ValueError when its sketches are not sketches."""
        at = min(event.occurred_at.timestamp(), now)
        if isinstance(payload, ApiHeartbeat):
            self.traffic.record(str(event.id), payload.routes, at, now)
            self.registry.heartbeat(payload, at, now)
        elif isinstance(payload, ApiStopped):
            self.registry.stopped(payload, at, now)
        else:
            return False
        return True
