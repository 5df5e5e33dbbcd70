"""Who is asking, and how much: each limited request's key found and the request counted against it,
in PostgreSQL so that every api instance sees the same counts (services/api/limits.py enforces them).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.api.allowance import Action, Allowance
from services.api.settings import ApiSettings
from shared import apikeys
from shared.apikeys import ApiKey
from shared.coalescing import Coalescer
from shared.db import RELAXED_COMMIT

# One statement finds the keys of every request waiting and counts them (services/api/auth.py batches
# them: shared/coalescing.py): a limited request (an upload, a job) shares one round trip to PostgreSQL
# with the requests that arrived while the previous one was under way. A key's requests of one action are
# one row, counted together ($3); no row when the token names no unrevoked key: nothing is counted then.
# Rows are counted in the keys' order, so two instances' batches lock the windows they share in one order.
# A count lost in a database crash lets a key a few more requests that minute; waiting for its fsync would
# make every request of one key queue behind the one before it on the window's row. Jobs in flight are
# counted up to the key's limit only: whether the limit is reached is all that is asked, and a key with a
# generous limit and thousands queued would otherwise scan them all on every request.
_AUTHENTICATE_AND_COUNT = f"""
WITH {RELAXED_COMMIT}, asked AS (
    SELECT * FROM unnest($1::bytea[], $2::text[], $3::integer[]) AS asked(token_sha256, action, requests)
), key AS (
    SELECT api_keys.*, asked.action AS asked_action, asked.requests AS asked_requests
    FROM asked JOIN api_keys USING (token_sha256) WHERE api_keys.revoked_at IS NULL
), expired AS (
    DELETE FROM rate_windows
    WHERE key_id IN (SELECT id FROM key) AND window_start < date_trunc('minute', now()) - interval '1 hour'
), counted AS (
    INSERT INTO rate_windows (key_id, action, window_start, count)
    SELECT id, asked_action, date_trunc('minute', now()), asked_requests FROM key ORDER BY id, asked_action
    ON CONFLICT (key_id, action, window_start) DO UPDATE SET count = rate_windows.count + excluded.count
    RETURNING key_id, action, count, window_start
)
SELECT key.*,
       counted.count AS requests_counted,
       extract(epoch FROM counted.window_start + interval '1 minute' - now())::float8 AS reset_s,
       (SELECT count(*) FROM (
            SELECT FROM jobs WHERE owner = key.owner AND status IN ('queued', 'processing')
            LIMIT coalesce(key.jobs_in_flight, $4)
        ) AS counted_in_flight) AS in_flight,
       (SELECT coalesce(sum(size_bytes), 0) FROM assets
         WHERE owner = key.owner AND created_at >= date_trunc('day', now()))::bigint AS bytes_today
FROM key JOIN counted ON counted.key_id = key.id AND counted.action = key.asked_action, relaxed_commit
"""
# Batches under way at once: a lone request never waits for another's statement, and under load the
# others wait for at most one statement before theirs is sent with everything that arrived meanwhile.
PARALLEL_BATCHES = 2
LARGEST_BATCH = 256


@dataclass(frozen=True)
class _Ask:
    token_sha256: bytes
    action: Action


Found = tuple[ApiKey, Allowance] | None


class KeyCounter:
    """Finds the key of each limited request and counts the request against it, many requests a statement.

    The counts are PostgreSQL's, so every api instance sees the same; a request is counted before it is
    answered, and requests of one key in one batch are counted in the order they arrived: the second of
    them sees the first's count, and the first's job as in flight (a stricter answer than two separate
    statements racing, which could both see room for one more).
    """

    def __init__(self, pool: asyncpg.Pool, settings: ApiSettings) -> None:
        self._pool = pool
        self._settings = settings
        self._batches = Coalescer(self._count, parallel=PARALLEL_BATCHES, largest=LARGEST_BATCH)

    async def authenticate_and_count(self, token: str, action: Action) -> Found:
        """The unrevoked key `token` belongs to and what it may still do, this request counted; None if no key."""
        return await self._batches.ask(_Ask(apikeys.digest(token), action))

    async def settle(self) -> None:
        await self._batches.settle()

    async def _count(self, asks: Sequence[_Ask]) -> list[Found]:
        requests = Counter(asks)
        distinct = sorted(requests, key=lambda ask: (ask.token_sha256, ask.action))
        records = await self._pool.fetch(
            _AUTHENTICATE_AND_COUNT,
            [ask.token_sha256 for ask in distinct],
            [ask.action for ask in distinct],
            [requests[ask] for ask in distinct],
            self._settings.jobs_in_flight,
        )
        found = {_Ask(record["token_sha256"], record["asked_action"]): record for record in records}
        earlier: Counter[_Ask] = Counter()
        answers: list[Found] = []
        for ask in asks:
            record = found.get(ask)
            if record is None:
                answers.append(None)
                continue
            # The window's count is the whole batch's: this request's is less by those of it that came later.
            later = requests[ask] - 1 - earlier[ask]
            answers.append(self._allowance(record, earlier=earlier[ask] if ask.action == "jobs" else 0, later=later))
            earlier[ask] += 1
        return answers

    def _allowance(self, record: asyncpg.Record, *, earlier: int, later: int) -> tuple[ApiKey, Allowance]:
        """`earlier` of the batch's jobs for this key arrived before this request; `later` requests after it."""
        key = ApiKey.from_record(record)
        requests_limit = key.requests_per_minute or self._settings.requests_per_minute
        return key, Allowance(
            requests_limit=requests_limit,
            requests_left=requests_limit - (record["requests_counted"] - later),
            reset_s=max(math.ceil(record["reset_s"]), 1),
            in_flight=record["in_flight"] + earlier,
            in_flight_limit=key.jobs_in_flight or self._settings.jobs_in_flight,
            bytes_left=(key.bytes_per_day or self._settings.bytes_per_day) - record["bytes_today"],
        )
