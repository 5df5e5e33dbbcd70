"""The one canonical log line per request, with its outcome and duration."""

from __future__ import annotations

import logging
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

log = structlog.get_logger()


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log `http.request` once the handler is done, with the status it answered (500 if it raised)."""
    if not log.is_enabled_for(logging.INFO):  # a level above INFO drops the line: time nothing to build it
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        log.info("http.request", method=request.method, path=request.path, status=status, duration_ms=duration_ms)
