"""Per-key limits, kept in PostgreSQL so every api instance sees the same counts.

- requests per minute on the endpoints that store or spend (uploads, jobs): a fixed window per minute,
  counted by one atomic upsert; a refused request counts too, so a flood stays refused;
- jobs in flight (queued or processing) before a new job is accepted;
- bytes stored per day, checked before an upload is read and again once its size is known.

One statement, shared by the limited requests under way together, does all three reads
(services/api/keycounter.py). Answers carry the IETF RateLimit headers; a refusal is a 429 with
Retry-After.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from services.api import keys
from services.api.allowance import Action, Allowance, seconds_to_midnight
from shared.errors import TooManyRequests

IN_FLIGHT_RETRY_AFTER_S = 10


def enforce(allowance: Allowance, action: Action) -> None:
    headers = allowance.headers()
    if allowance.requests_left < 0:
        raise TooManyRequests(
            f"more than {allowance.requests_limit} requests a minute to {action}",
            headers={**headers, "Retry-After": str(allowance.reset_s)},
        )
    if action == "jobs" and allowance.in_flight >= allowance.in_flight_limit:
        raise TooManyRequests(
            f"{allowance.in_flight_limit} jobs of this key are queued or processing (the limit)",
            code="too_many_jobs_in_flight",
            headers={**headers, "Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)},
        )
    if action == "uploads" and allowance.bytes_left <= 0:
        raise TooManyRequests(
            "this key has stored its bytes for today",
            code="daily_bytes_exceeded",
            headers={**headers, "Retry-After": str(seconds_to_midnight())},
        )


@web.middleware
async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse what the allowance (counted as the caller was authenticated, services/api/auth.py) does not
    cover, and tell the client where it stands."""
    action = request.app[keys.LIMITED].get(request.match_info.handler)
    allowance = request.get(keys.ALLOWANCE)
    if action is None or allowance is None:
        return await handler(request)
    enforce(allowance, action)
    response = await handler(request)
    if not response.prepared:
        response.headers.update(allowance.headers())
    return response
