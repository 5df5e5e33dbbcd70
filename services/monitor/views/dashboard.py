"""The dashboard: one HTML page with its own script and style (no CDN), and the JSON it polls."""

from __future__ import annotations

import functools
import html
import time
from pathlib import Path
from string import Template
from typing import Any

from aiohttp import web

from services.monitor import keys
from services.monitor.admin import auth, csrf
from services.monitor.views.health import SNAPSHOT_MAX_AGE_S, admin_body, jsonable
from shared.errors import NotFound

HERE = Path(__file__).resolve().parent.parent
TEMPLATE = HERE / "templates" / "dashboard.html"
STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css", "charts.js": "application/javascript"}
HISTORY_ON_DASHBOARD = 20


@functools.cache
def _template() -> Template:
    return Template(TEMPLATE.read_text(encoding="utf-8"))


@functools.cache
def _static(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


async def index(_: web.Request) -> web.Response:
    raise web.HTTPFound("/admin/dashboard")


async def page(request: web.Request) -> web.Response:
    """The page hands out the session's CSRF token; loading it without a live session is the login."""
    settings = request.app[keys.SETTINGS]
    session, started = auth.login_session(request)
    text = _template().substitute(
        csrf_token=html.escape(session.token),
        refresh_ms=int(settings.dashboard_refresh_seconds * 1000),
        environment=html.escape(settings.environment),
        version=html.escape(settings.app_version),
    )
    response = web.Response(text=text, content_type="text/html")
    if started:
        csrf.set_cookie(response, session, secure=auth.over_https(request, trusted_proxies=settings.trusted_proxies))
    return response


async def asset(request: web.Request) -> web.Response:
    """Three known files, served from memory: no path is built from the request, and no range or
    conditional request reaches a file handler (the name never goes into a reason phrase either)."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise NotFound("no such static file")
    return web.Response(body=_static(name), headers={"Content-Type": STATIC[name]})


def overview_body(app: web.Application, now: float) -> dict[str, Any]:
    """What the dashboard polls: the admin health plus chart series, alert history and the span budget."""
    snapshot = app[keys.AGGREGATOR].snapshot(now, max_age=SNAPSHOT_MAX_AGE_S)
    body = admin_body(app, now, snapshot)
    body.update(
        jsonable(
            {
                "series": snapshot.series,
                "alert_history": app[keys.ALERTS].history[:HISTORY_ON_DASHBOARD],
                "budget": app[keys.CHECKER].budget,
            }
        )
    )
    return body


async def overview(request: web.Request) -> web.Response:
    return web.json_response(overview_body(request.app, time.time()))
