"""Test-only faults: with `LUSTER_API_FAULTS=on` (refused in production), a request that asks for one gets it.

    X-Luster-Fault: error       answered 500 by the api itself
    X-Luster-Fault: slow=2.5    answered as usual, 2.5 seconds late (at most 30)

The system tests make the monitor's HTTP error rate and P95 alerts fire with them, through a real api
process; the request is measured like any other (the hook sits inside the metrics middleware). Without the
variable the hook is not installed, and the header means nothing.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

ENVIRONMENT_VARIABLE = "LUSTER_API_FAULTS"
HEADER = "X-Luster-Fault"
MAX_DELAY_S = 30.0


def hook(environment: str) -> Middleware | None:
    """The fault middleware when the variable asks for it; SystemExit when it does in production."""
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower() not in ("on", "1", "true"):
        return None
    if environment == "production":
        raise SystemExit(f"luster: {ENVIRONMENT_VARIABLE} injects faults and is refused with ENVIRONMENT=production")
    return inject


@web.middleware
async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
    fault, _, value = request.headers.get(HEADER, "").partition("=")
    if fault == "error":
        return web.json_response({"error": {"code": "injected_fault", "message": "a test's fault"}}, status=500)
    if fault == "slow":
        try:
            delay = min(max(float(value), 0.0), MAX_DELAY_S)
        except ValueError:
            delay = 0.0
        await asyncio.sleep(delay)
    return await handler(request)
