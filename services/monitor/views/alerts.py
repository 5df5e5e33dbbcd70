"""Alerts: what fires now, what fired and resolved, and the rules with their thresholds."""

from __future__ import annotations

from aiohttp import web
from pydantic_core import to_jsonable_python

from services.monitor import keys
from services.monitor.alerting.rules import describe


async def listing(request: web.Request) -> web.Response:
    engine = request.app[keys.ALERTS]
    body = {"active": engine.active, "history": engine.history, "rules": [describe(rule) for rule in engine.rules]}
    return web.json_response(to_jsonable_python(body))
