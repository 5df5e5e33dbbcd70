"""The dashboard: one HTML page with its own script and style (no CDN), and the JSON it polls."""

from __future__ import annotations

import functools
import html
from pathlib import Path
from string import Template

from aiohttp import web

from services.monitor import keys, report
from services.monitor.auth import csrf_token

HERE = Path(__file__).resolve().parent.parent
TEMPLATE = HERE / "templates" / "dashboard.html"
STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css", "charts.js": "application/javascript"}


@functools.cache
def _template() -> Template:
    return Template(TEMPLATE.read_text(encoding="utf-8"))


async def index(_: web.Request) -> web.Response:
    raise web.HTTPFound("/admin/dashboard")


async def page(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    text = _template().substitute(
        csrf_token=html.escape(csrf_token(settings)),
        refresh_ms=int(settings.dashboard_refresh_seconds * 1000),
        environment=html.escape(settings.environment),
        version=html.escape(settings.app_version),
    )
    return web.Response(text=text, content_type="text/html")


async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(reason=f"no static file {name}")
    return web.FileResponse(HERE / "static" / name, headers={"Content-Type": STATIC[name]})


async def overview(request: web.Request) -> web.Response:
    return web.json_response(report.overview(request.app, report.now()))
