"""Per-key limits, kept in PostgreSQL so every api instance sees the same counts.

- requests per minute on the endpoints that store or spend (uploads, jobs): a fixed window per minute,
  counted by one atomic upsert; a refused request counts too, so a flood stays refused;
- jobs in flight (queued or processing) before a new job is accepted;
- bytes stored per day, checked before an upload is read and again once its size is known.

One statement per limited request does all three reads. Answers carry the IETF RateLimit headers;
a refusal is a 429 with Retry-After.
"""

from __future__ import annotations

import math
from typing import Literal

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from services.api import keys
from services.api.allowance import Allowance, seconds_to_midnight
from services.api.caller import Caller
from services.api.settings import ApiSettings
from shared.errors import TooManyRequests

Action = Literal["uploads", "jobs"]
IN_FLIGHT_RETRY_AFTER_S = 10

_COUNT = """
WITH expired AS (
    DELETE FROM rate_windows WHERE key_id = $1 AND window_start < date_trunc('minute', now()) - interval '1 hour'
), counted AS (
    INSERT INTO rate_windows (key_id, action, window_start, count)
    VALUES ($1, $2, date_trunc('minute', now()), 1)
    ON CONFLICT (key_id, action, window_start) DO UPDATE SET count = rate_windows.count + 1
    RETURNING count, window_start
)
SELECT counted.count,
       extract(epoch FROM counted.window_start + interval '1 minute' - now())::float8 AS reset_s,
       (SELECT count(*) FROM jobs WHERE owner = $3 AND status IN ('queued', 'processing')) AS in_flight,
       (SELECT coalesce(sum(size_bytes), 0) FROM assets
         WHERE owner = $3 AND created_at >= date_trunc('day', now()))::bigint AS bytes_today
FROM counted
"""


async def count(pool: asyncpg.Pool, caller: Caller, action: Action, settings: ApiSettings) -> Allowance:
    record = await pool.fetchrow(_COUNT, caller.key.id, action, caller.owner)
    assert record is not None  # the upsert always returns its row
    key = caller.key
    requests_limit = key.requests_per_minute or settings.requests_per_minute
    return Allowance(
        requests_limit=requests_limit,
        requests_left=requests_limit - record["count"],
        reset_s=max(math.ceil(record["reset_s"]), 1),
        in_flight=record["in_flight"],
        in_flight_limit=key.jobs_in_flight or settings.jobs_in_flight,
        bytes_left=(key.bytes_per_day or settings.bytes_per_day) - record["bytes_today"],
    )


def enforce(allowance: Allowance, action: Action) -> None:
    headers = allowance.headers()
    if allowance.requests_left < 0:
        raise TooManyRequests(
            f"more than {allowance.requests_limit} requests a minute to {action}",
            headers={**headers, "Retry-After": str(allowance.reset_s)},
        )
    if action == "jobs" and allowance.in_flight >= allowance.in_flight_limit:
        raise TooManyRequests(
            f"{allowance.in_flight} jobs of this key are queued or processing (the limit)",
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
    action = request.app[keys.LIMITED].get(request.match_info.handler)
    if action is None:
        return await handler(request)
    allowance = await count(request.app[keys.POOL], request[keys.CALLER], action, request.app[keys.SETTINGS])
    enforce(allowance, action)
    request[keys.ALLOWANCE] = allowance
    response = await handler(request)
    if not response.prepared:
        response.headers.update(allowance.headers())
    return response
