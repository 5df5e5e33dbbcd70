"""Health: the public probe and the detailed admin view, both read from the latest check."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic_core import to_jsonable_python

from services.monitor import keys
from services.monitor.aggregation.snapshot import StatsSnapshot, moment
from services.monitor.alerting.health import Verdict, assess, stale_after
from services.monitor.broker.queues import work_consumers, work_depth

# Statistics a second old at most: the windows move in 10 s steps, and however often the pages are
# polled, the monitor builds them once a second and spends the rest of its time on the events.
SNAPSHOT_MAX_AGE_S = 1.0


def jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """Dataclasses, datetimes and enums as JSON-ready values."""
    converted: dict[str, Any] = to_jsonable_python(value)
    return converted


def verdict(app: web.Application, now: float) -> Verdict:
    settings = app[keys.SETTINGS]
    return assess(
        app[keys.CHECKER].observation,
        app[keys.ALERTS].active,
        now=now,
        stale_after=stale_after(settings.check_interval),
        depth_threshold=settings.alert_queue_depth,
    )


def _services(app: web.Application) -> dict[str, str]:
    """The guide's shape: {"database": "healthy", ...}, and the api as its heartbeats tell: healthy while an
    instance is alive, unhealthy once none is, "unknown" while none has been heard of."""
    observation = app[keys.CHECKER].observation
    dependencies = observation.dependencies if observation else {"database": False, "broker": False}
    services = {name: "healthy" if ok else "unhealthy" for name, ok in dependencies.items()}
    if observation is None or not observation.apis_seen:
        services["api"] = "unknown"
    else:
        services["api"] = "healthy" if observation.apis_active > 0 else "unhealthy"
    return services


def _api(app: web.Application, now: float) -> dict[str, Any]:
    watch, observation = app[keys.APIS], app[keys.CHECKER].observation
    return {
        "active": watch.registry.active_count(now),
        "stale_after_intervals": watch.registry.stale_factor,
        "instances": watch.registry.views(now),
        "windows": observation.http if observation else {},
    }


def public_body(app: web.Application, now: float) -> tuple[dict[str, Any], int]:
    """Exactly the deployment guide's shape, plus the queue depth and when it was checked."""
    judged, observation = verdict(app, now), app[keys.CHECKER].observation
    body = {
        "status": judged.status,
        "services": _services(app),
        "workers": {"estimated_active": observation.estimated_active if observation else 0},
        # depth: ready in the work queues; waiting: every queued job, with those held for fair share.
        "queue": {
            "depth": observation.queue_depth if observation else 0,
            "waiting": observation.jobs_waiting if observation else 0,
        },
        "checked_at": moment(observation.at) if observation else None,
    }
    return jsonable(body), judged.http_status


def _workers(app: web.Application, now: float) -> dict[str, Any]:
    check, observation = app[keys.CHECKER].latest, app[keys.CHECKER].observation
    registry = app[keys.WORKERS]
    return {
        "estimated_active": observation.estimated_active if observation else 0,
        "heartbeating": registry.active_count(now),
        "broker_consumers": work_consumers(check.queues) if check else None,
        "stale_after_intervals": registry.stale_factor,
        "list": registry.views(now),
    }


def _queues(app: web.Application) -> dict[str, Any]:
    check = app[keys.CHECKER].latest
    stats = check.queues if check else []
    return {"source": app[keys.QUEUES].source, "depth": work_depth(stats), "list": stats}


def admin_body(app: web.Application, now: float, snapshot: StatsSnapshot) -> dict[str, Any]:
    judged, settings = verdict(app, now), app[keys.SETTINGS]
    observation = app[keys.CHECKER].observation
    return jsonable(
        {
            "status": judged.status,
            "reasons": judged.reasons,
            "checked_at": moment(observation.at) if observation else None,
            "version": settings.app_version,
            "environment": settings.environment,
            "services": _services(app),
            "service_errors": check.errors if (check := app[keys.CHECKER].latest) else {},
            "jobs": snapshot.jobs,
            "jobs_by_tier": snapshot.jobs_by_tier,
            "windows": snapshot.windows,
            "workers": _workers(app, now),
            "api": _api(app, now),
            "queues": _queues(app),
            "alerts": {"active": app[keys.ALERTS].active},
            "spend": app[keys.CHECKER].spend,
            "flagged_jobs": app[keys.CHECKER].flagged,
        }
    )


async def public(request: web.Request) -> web.Response:
    body, status = public_body(request.app, time.time())
    return web.json_response(body, status=status)


async def admin(request: web.Request) -> web.Response:
    now = time.time()
    snapshot = request.app[keys.AGGREGATOR].snapshot(now, max_age=SNAPSHOT_MAX_AGE_S)
    return web.json_response(admin_body(request.app, now, snapshot))
