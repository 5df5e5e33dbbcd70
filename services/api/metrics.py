"""The api's own Prometheus metrics: requests by route and outcome, and how long they took.

A request is labelled with its route's template (`/jobs/{job_id}`), never the path it asked for, and every
path no route matches with one value, `unmatched`: whatever a stranger requests, the label values stay the
routes' own few. Protocol errors the parser answers before any handler (an oversized head, not HTTP at
all) reach no middleware and are not counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.api.traffic import Traffic
from shared.telemetry.metrics import DURATION_BUCKETS, service_registry, trace_exemplar

UNMATCHED = "unmatched"


@dataclass(frozen=True)
class ApiMetrics:
    """The registry /metrics serves and the request metrics on it."""

    registry: CollectorRegistry
    requests: Counter
    duration: Histogram
    # The labelled series by their labels: `labels()` takes a lock and checks its arguments on every call.
    _series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = field(default_factory=dict)

    @classmethod
    def create(cls, version: str) -> ApiMetrics:
        registry = service_registry("api", version)
        requests = Counter(
            "luster_http_requests",  # exposed as luster_http_requests_total
            "HTTP requests answered, by route template, method and status class (2xx, 4xx, 5xx).",
            ["route", "method", "status_class"],
            registry=registry,
        )
        duration = Histogram(
            "luster_http_request_duration_seconds",
            "Time from the request's arrival to its answer, by route template.",
            ["route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        return cls(registry, requests, duration)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        status_class = status // 100
        series = self._series.get((route, method, status_class))
        if series is None:
            series = self._series[route, method, status_class] = (
                self.requests.labels(route=route, method=method, status_class=f"{status_class}xx"),
                self.duration.labels(route=route),
            )
        requests, duration = series
        requests.inc()
        # Called inside the request's server span: its trace becomes the observation's exemplar.
        duration.observe(seconds, exemplar=trace_exemplar())


def route_of(request: web.Request) -> str:
    """The template of the route that matched (what the router was given), or `unmatched`."""
    resource = request.match_info.route.resource
    if request.match_info.http_exception is not None or resource is None:
        return UNMATCHED
    return resource.canonical


def method_of(request: web.Request) -> str:
    """The method as a label: a made-up method (any token is legal HTTP) is refused, and counted as `other`."""
    return request.method if request.method in hdrs.METH_ALL else "other"


def measuring(metrics: ApiMetrics, traffic: Traffic) -> Middleware:
    """The middleware that counts each request and times it once it is answered: for Prometheus, and for
    the heartbeat that tells the monitor (services/api/traffic.py)."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500  # a handler that raised past the error middleware
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:  # a redirect raised as an exception
            status = error.status
            raise
        finally:
            route, seconds = route_of(request), time.perf_counter() - started
            metrics.observe(route, method_of(request), status, seconds)
            traffic.record(route, status, seconds)

    return measure
