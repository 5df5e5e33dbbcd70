"""Every monitor endpoint in one table. Everything under /admin, and /metrics, needs the admin login."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.monitor.views import alerts, apikeys, dashboard, health, job, jobs, metrics, queues

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEAD_LETTERS = "/admin/queues/dead-letters"
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/health", health.public),
    ("GET", "/admin", dashboard.index),
    ("GET", "/admin/health", health.admin),
    ("GET", "/admin/dashboard", dashboard.page),
    ("GET", "/admin/static/{name}", dashboard.asset),
    ("GET", "/admin/api/overview", dashboard.overview),
    ("GET", "/admin/jobs", jobs.recent),
    ("GET", "/admin/jobs/flagged", jobs.flagged),  # before /admin/jobs/{job_id}: routes match in this order
    ("GET", "/admin/jobs/{job_id}", job.detail),
    ("POST", "/admin/jobs/{job_id}/cancel", job.cancel),
    ("POST", "/admin/jobs/{job_id}/retry", job.retry),
    ("GET", "/admin/queues", queues.listing),
    ("POST", f"{DEAD_LETTERS}/requeue", queues.requeue_all),
    ("POST", f"{DEAD_LETTERS}/purge", queues.purge),
    ("POST", f"{DEAD_LETTERS}/{{key}}/requeue", queues.requeue_one),
    ("GET", "/admin/alerts", alerts.listing),
    ("GET", "/admin/keys", apikeys.listing),
    ("POST", "/admin/keys", apikeys.create),
    ("POST", "/admin/keys/{key_id}/revoke", apikeys.revoke),
    ("GET", "/metrics", metrics.scrape),
)


def setup_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
