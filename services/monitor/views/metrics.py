"""/metrics in the Prometheus text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from services.monitor import keys
from services.monitor.metrics import render


async def scrape(request: web.Request) -> web.Response:
    return web.Response(body=render(request.app[keys.METRICS]), headers={"Content-Type": CONTENT_TYPE_LATEST})
