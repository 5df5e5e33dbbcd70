"""The worker's own Prometheus metrics and the small HTTP server Prometheus scrapes them from (METRICS_PORT).

The server lives as long as the worker's other resources: it answers through the drain on SIGTERM, so
the last scrape sees the last jobs, and closes with the rest. A port already taken (a second worker on a
developer's machine) is logged and the worker works on without it: the metrics are a view of the work,
never a reason to stop it. With METRICS_TOKEN set, a scrape must carry it, as on the api.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.worker.settings import WorkerSettings
from shared.domain import Tier
from shared.telemetry.metrics import DURATION_BUCKETS, bearer_matches, exposition, service_registry, trace_exemplar

log = structlog.get_logger()
METRICS_HOST = "0.0.0.0"  # Prometheus scrapes from another machine (or container)
REGISTRY = web.AppKey("registry", CollectorRegistry)
SETTINGS = web.AppKey("settings", WorkerSettings)


@dataclass(frozen=True)
class WorkerMetrics:
    """The registry the metrics server serves and what the job handler records on it."""

    registry: CollectorRegistry
    engine_duration: Histogram
    engine_cost: Counter
    jobs: Counter

    @classmethod
    def create(cls, version: str) -> WorkerMetrics:
        registry = service_registry("worker", version)
        duration = Histogram(
            "luster_engine_duration_seconds",
            "Time one engine call took, by the engine that answered (or was asked, when it failed) and tier.",
            ["engine", "tier"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        cost = Counter(
            "luster_engine_cost_usd",  # exposed as luster_engine_cost_usd_total
            "US dollars the engines billed for job attempts, failed ones included, by engine and tier.",
            ["engine", "tier"],
            registry=registry,
        )
        jobs = Counter(
            "luster_jobs_processed",  # exposed as luster_jobs_processed_total
            "Job attempts this worker finished, by outcome (succeeded, failed, retried) and tier.",
            ["outcome", "tier"],
            registry=registry,
        )
        return cls(registry, duration, cost, jobs)

    def engine_ran(self, engine: str, tier: Tier, seconds: float) -> None:
        """Called inside the engine's span: the job's trace becomes the observation's exemplar."""
        self.engine_duration.labels(engine=engine, tier=tier.value).observe(seconds, exemplar=trace_exemplar())

    def finished(self, outcome: str, tier: Tier, *, engine: str, cost: Decimal) -> None:
        self.jobs.labels(outcome=outcome, tier=tier.value).inc()
        self.engine_cost.labels(engine=engine, tier=tier.value).inc(float(cost))


async def _scrape(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token is not None and not bearer_matches(request.headers.get("Authorization", ""), token):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="luster-metrics"'})
    return exposition(request.app[REGISTRY], request.headers.get("Accept", ""))


@contextlib.asynccontextmanager
async def serving(settings: WorkerSettings, metrics: WorkerMetrics) -> AsyncIterator[int | None]:
    """Serve GET /metrics on METRICS_PORT until the block ends; yields the port bound, or None."""
    app = web.Application()
    app[REGISTRY], app[SETTINGS] = metrics.registry, settings
    app.router.add_get("/metrics", _scrape)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, METRICS_HOST, settings.metrics_port)
        try:
            await site.start()
        except OSError as error:
            log.warning("metrics.unavailable", port=settings.metrics_port, error=str(error))
            yield None
            return
        port: int = runner.addresses[0][1]
        log.info("metrics.serving", port=port)
        yield port
    finally:
        await runner.cleanup()
