"""What this api instance answered since its last heartbeat: requests by route and status class, and a
latency sketch per route. The heartbeat (services/api/heartbeat.py) takes it and starts a new interval.

Routes are the metrics middleware's labels (templates, or `unmatched`), so whatever strangers request,
the tally holds the routes' own few keys.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ddsketch import DDSketch

from shared import sketches
from shared.events import RouteTraffic


@dataclass
class _RouteTally:
    statuses: Counter[str] = field(default_factory=Counter)
    latency: DDSketch = field(default_factory=sketches.new_sketch)


class Traffic:
    def __init__(self) -> None:
        self._routes: dict[str, _RouteTally] = {}

    def record(self, route: str, status: int, seconds: float) -> None:
        tally = self._routes.get(route)
        if tally is None:
            tally = self._routes[route] = _RouteTally()
        tally.statuses[f"{status // 100}xx"] += 1
        tally.latency.add(max(seconds, 0.0))

    def take(self) -> list[RouteTraffic]:
        """The interval's traffic, route by route; the next interval starts empty."""
        routes, self._routes = self._routes, {}
        return [
            RouteTraffic(route=route, statuses=dict(tally.statuses), latency_sketch=sketches.encode(tally.latency))
            for route, tally in sorted(routes.items())
        ]
