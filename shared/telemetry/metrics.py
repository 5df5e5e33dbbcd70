"""Prometheus metrics every service exposes about itself: a registry of its own with the process and Python
collectors and `luster_build_info`, the scrape's answer, and the scrape's bearer-token check.

Durations carry the trace of the request or job they measured as an exemplar (`trace_id`, sampled traces
only), which a scrape in the OpenMetrics format shows: Grafana links each one to the trace in Jaeger.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web
from opentelemetry import trace
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from pydantic import SecretStr

# Histogram bounds for request and engine durations, in seconds: the guide's 500 ms target and 2 s alert
# among them, and up to the 60 s a `Prefer: wait` may hold a request.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def service_registry(service: str, version: str) -> CollectorRegistry:
    """A registry of the service's own (a test's several apps never share one): process, platform, GC
    and build info. The process collector reads /proc, so off Linux it yields nothing, harmlessly."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Gauge(
        "luster_build_info",
        "Always 1; the service and the release it runs (APP_VERSION) as labels.",
        ["service", "version"],
        registry=registry,
    )
    build.labels(service=service, version=version).set(1)
    return registry


def bearer_matches(authorization: str, token: SecretStr) -> bool:
    """`Authorization: Bearer <token>`, compared on digests in constant time (not even the length leaks)."""
    scheme, _, given = authorization.partition(" ")
    expected = hashlib.sha256(token.get_secret_value().encode()).digest()
    offered = hashlib.sha256(given.strip().encode("utf-8", "surrogateescape")).digest()
    return scheme.lower() == "bearer" and hmac.compare_digest(offered, expected)


def trace_exemplar() -> dict[str, str] | None:
    """The current span's trace as an exemplar, when the trace is kept (an unsampled one leads nowhere)."""
    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return {"trace_id": format(context.trace_id, "032x")}


def exposition(registry: CollectorRegistry, accept: str) -> web.Response:
    """The registry in the format the scraper accepts: OpenMetrics (with exemplars) or the classic text."""
    encode, content_type = choose_encoder(accept)
    return web.Response(body=encode(registry), headers={"Content-Type": content_type})
