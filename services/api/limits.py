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
from services.api.settings import ApiSettings
from shared import apikeys
from shared.apikeys import ApiKey
from shared.db import RELAXED_COMMIT
from shared.errors import TooManyRequests

Action = Literal["uploads", "jobs"]
IN_FLIGHT_RETRY_AFTER_S = 10

# One statement finds the key and counts the request: a limited request (an upload, a job) costs one
# round trip to PostgreSQL before its own work. No row when the token names no unrevoked key: nothing
# is counted then. A count lost in a database crash lets a key a few more requests that minute; waiting
# for its fsync would make every request of one key queue behind the one before it on the window's row.
# Jobs in flight are counted up to the key's limit only: whether the limit is reached is all that is asked,
# and a key with a generous limit and thousands queued would otherwise scan them all on every request.
_AUTHENTICATE_AND_COUNT = f"""
WITH {RELAXED_COMMIT}, key AS (
    SELECT * FROM api_keys WHERE token_sha256 = $1 AND revoked_at IS NULL
), expired AS (
    DELETE FROM rate_windows
    WHERE key_id = (SELECT id FROM key) AND window_start < date_trunc('minute', now()) - interval '1 hour'
), counted AS (
    INSERT INTO rate_windows (key_id, action, window_start, count)
    SELECT id, $2, date_trunc('minute', now()), 1 FROM key
    ON CONFLICT (key_id, action, window_start) DO UPDATE SET count = rate_windows.count + 1
    RETURNING count, window_start
)
SELECT key.*,
       counted.count AS requests_counted,
       extract(epoch FROM counted.window_start + interval '1 minute' - now())::float8 AS reset_s,
       (SELECT count(*) FROM (
            SELECT FROM jobs WHERE owner = key.owner AND status IN ('queued', 'processing')
            LIMIT coalesce(key.jobs_in_flight, $3)
        ) AS counted_in_flight) AS in_flight,
       (SELECT coalesce(sum(size_bytes), 0) FROM assets
         WHERE owner = key.owner AND created_at >= date_trunc('day', now()))::bigint AS bytes_today
FROM key, counted, relaxed_commit
"""


async def authenticate_and_count(
    pool: asyncpg.Pool, token: str, action: Action, settings: ApiSettings
) -> tuple[ApiKey, Allowance] | None:
    """The unrevoked key `token` belongs to and what it may still do, this request counted; None if no key."""
    record = await pool.fetchrow(_AUTHENTICATE_AND_COUNT, apikeys.digest(token), action, settings.jobs_in_flight)
    if record is None:
        return None
    key = ApiKey.from_record(record)
    requests_limit = key.requests_per_minute or settings.requests_per_minute
    allowance = Allowance(
        requests_limit=requests_limit,
        requests_left=requests_limit - record["requests_counted"],
        reset_s=max(math.ceil(record["reset_s"]), 1),
        in_flight=record["in_flight"],
        in_flight_limit=key.jobs_in_flight or settings.jobs_in_flight,
        bytes_left=(key.bytes_per_day or settings.bytes_per_day) - record["bytes_today"],
    )
    return key, allowance


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
