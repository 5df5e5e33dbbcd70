"""Health: the public probe and the detailed admin view."""

from __future__ import annotations

from aiohttp import web

from services.monitor import report


async def public(request: web.Request) -> web.Response:
    body, status = report.public_health(request.app, report.now())
    return web.json_response(body, status=status)


async def admin(request: web.Request) -> web.Response:
    return web.json_response(report.admin_health(request.app, report.now()))
