"""The api's traffic as its instances' heartbeats report it: requests, error rates and latency per window.

Each heartbeat carries an interval's requests by route and status class and a DDSketch of their durations
per route (services/api/traffic.py); they land in the bucket of the heartbeat's time, and a window's
percentiles come from merging every sketch in it, across instances and intervals: exact to 1 %, which no
average of per-instance percentiles is. A heartbeat delivered twice counts once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ddsketch import DDSketch

from services.monitor.aggregation.bounded import RecentSet
from services.monitor.aggregation.buckets import RollingBuckets
from services.monitor.aggregation.latency import Percentiles
from shared import sketches
from shared.events import RouteTraffic

FINE_WIDTH, FINE_COUNT = 10.0, 30  # the 1 and 5 minute windows
COARSE_WIDTH, COARSE_COUNT = 60.0, 60  # the hour
WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600}


@dataclass
class HttpBucket:
    index: int
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, status class) -> answered
    latency: dict[str, DDSketch] = field(default_factory=dict)  # route -> durations, seconds

    def add(self, route: RouteTraffic, sketch: DDSketch) -> None:
        for status_class, count in route.statuses.items():
            self.requests[route.route, status_class] += count
        known = self.latency.get(route.route)
        if known is None:
            known = self.latency[route.route] = sketches.new_sketch()
        known.merge(sketch)


@dataclass(frozen=True)
class RouteStats:
    requests: int
    server_errors: int  # answered 5xx
    client_errors: int  # answered 4xx
    latency: Percentiles


@dataclass(frozen=True)
class HttpWindow:
    window: str
    seconds: int
    requests: int
    requests_per_min: float
    error_rate: float | None  # 5xx among the requests answered
    client_error_rate: float | None  # 4xx, apart: a client's mistakes are not an outage
    latency: Percentiles
    routes: dict[str, RouteStats]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _merged(found: Sequence[DDSketch]) -> DDSketch:
    total = sketches.new_sketch()
    for sketch in found:
        total.merge(sketch)
    return total


def window_of(name: str, seconds: int, buckets: Sequence[HttpBucket]) -> HttpWindow:
    by_route: dict[str, Counter[str]] = {}
    for bucket in buckets:
        for (route, status_class), count in bucket.requests.items():
            by_route.setdefault(route, Counter())[status_class] += count
    routes = {
        route: RouteStats(
            requests=sum(classes.values()),
            server_errors=classes["5xx"],
            client_errors=classes["4xx"],
            latency=Percentiles.of(_merged([b.latency[route] for b in buckets if route in b.latency])),
        )
        for route, classes in sorted(by_route.items())
    }
    requests = sum(r.requests for r in routes.values())
    return HttpWindow(
        window=name,
        seconds=seconds,
        requests=requests,
        requests_per_min=round(requests / (seconds / 60), 3),
        error_rate=_ratio(sum(r.server_errors for r in routes.values()), requests),
        client_error_rate=_ratio(sum(r.client_errors for r in routes.values()), requests),
        latency=Percentiles.of(_merged([sketch for b in buckets for sketch in b.latency.values()])),
        routes=routes,
    )


class HttpTraffic:
    def __init__(self, *, memory: int = 10_000) -> None:
        self.fine = RollingBuckets(FINE_WIDTH, FINE_COUNT, HttpBucket)
        self.coarse = RollingBuckets(COARSE_WIDTH, COARSE_COUNT, HttpBucket)
        self._seen: RecentSet[str] = RecentSet(memory)  # heartbeat event ids

    def record(self, event_id: str, routes: Sequence[RouteTraffic], at: float, now: float) -> bool:
        """Count one heartbeat's traffic; False when that heartbeat was counted before.

        Raises ValueError, counting nothing, when a route's latency sketch is not one."""
        decoded = [(route, sketches.decode(route.latency_sketch)) for route in routes]
        if not self._seen.add(event_id):
            return False
        for buckets in (self.fine, self.coarse):
            bucket = buckets.bucket(at, now)
            if bucket is not None:
                for route, sketch in decoded:
                    bucket.add(route, sketch)
        return True

    def windows(self, now: float) -> dict[str, HttpWindow]:
        return {
            name: window_of(name, seconds, self._buckets_for(seconds).window(now, seconds))
            for name, seconds in WINDOWS.items()
        }

    def _buckets_for(self, seconds: int) -> RollingBuckets[HttpBucket]:
        return self.fine if seconds <= FINE_WIDTH * FINE_COUNT else self.coarse
