"""Limited requests under way together are authenticated and counted by one statement, each as if alone."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import pytest
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from services.api.allowance import Action
from services.api.app import create_app
from services.api.keycounter import PARALLEL_BATCHES, Found, KeyCounter
from services.api.settings import ApiSettings
from shared import apikeys
from tests.conftest import bearer

pytestmark = pytest.mark.integration


class CountingPool:
    """The pool, with the statements sent through it counted."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements = 0

    async def fetch(self, *args: Any) -> list[asyncpg.Record]:
        self.statements += 1
        return await self._pool.fetch(*args)


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def all_at_once(counter: KeyCounter, asks: list[tuple[str, Action]]) -> list[Found]:
    """Every ask made before any statement is answered: they arrive together."""
    return await asyncio.gather(*(counter.authenticate_and_count(token, action) for token, action in asks))


async def test_requests_under_way_together_share_statements_and_are_each_counted_in_turn(
    pool: asyncpg.Pool, api_settings: ApiSettings
) -> None:
    tokens = [token_of(await bearer(pool, owner=f"owner-{n}", requests_per_minute=10)) for n in range(3)]
    counting = CountingPool(pool)
    counter = KeyCounter(cast(asyncpg.Pool, counting), api_settings)
    asks: list[tuple[str, Action]] = [(token, "jobs") for token in tokens for _ in range(4)]

    found = await all_at_once(counter, asks)

    # The first asks (both the first key's) each find a slot free; the other ten wait and go together,
    # each key's in the order they arrived. The first key's lone statements raced: either may count first.
    assert counting.statements == PARALLEL_BATCHES + 1
    remaining = [[allowance.requests_left for _, allowance in filter(None, found[4 * n : 4 * n + 4])] for n in range(3)]
    assert sorted(remaining[0]) == [6, 7, 8, 9] and remaining[0][2:] in ([7, 6], [8, 7])
    assert remaining[1:] == [[9, 8, 7, 6], [9, 8, 7, 6]]
    assert [answer[0].owner if answer else None for answer in found] == [f"owner-{n // 4}" for n in range(12)]
    windows = await pool.fetch("SELECT action, count FROM rate_windows ORDER BY count")
    assert [(window["action"], window["count"]) for window in windows] == [("jobs", 4)] * 3


async def test_a_batch_counts_its_earlier_jobs_as_in_flight(pool: asyncpg.Pool, api_settings: ApiSettings) -> None:
    """Two of one key's jobs arriving together cannot both take the last place in flight."""
    token = token_of(await bearer(pool, owner="busy", jobs_in_flight=2))
    counter = KeyCounter(pool, api_settings)

    found = await all_at_once(counter, [(token, "jobs")] * 5)

    # The first two went alone (neither's job was written yet); the other three together, each counting
    # those before it in the batch.
    assert [answer[1].in_flight if answer else None for answer in found] == [0, 0, 0, 1, 2]


async def test_strangers_in_a_batch_are_answered_none_and_counted_nowhere(
    pool: asyncpg.Pool, api_settings: ApiSettings
) -> None:
    good = token_of(await bearer(pool, owner="good", requests_per_minute=10))
    revoked = token_of(await bearer(pool, owner="gone"))
    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE owner = 'gone'")
    counter = KeyCounter(pool, api_settings)

    found = await all_at_once(
        counter, [(good, "jobs"), (revoked, "jobs"), (apikeys.new_token(), "jobs"), (good, "uploads"), (good, "jobs")]
    )

    assert [answer is None for answer in found] == [False, True, True, False, False]
    windows = await pool.fetch("SELECT action, count FROM rate_windows ORDER BY action")
    assert [(window["action"], window["count"]) for window in windows] == [("jobs", 2), ("uploads", 1)]


async def test_a_concurrent_flood_gets_exactly_its_limit_and_each_answer_its_own_remainder(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    headers = await bearer(pool, owner="flooder", requests_per_minute=4)
    client = await aiohttp_client(create_app(api_settings), headers=headers)
    form = FormData()
    form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
    asset = (await (await client.post("/assets", data=form)).json())["asset"]

    answers = await asyncio.gather(
        *(client.post("/jobs", json={"prompt": "again", "asset_id": asset["id"]}) for _ in range(10))
    )

    accepted = [answer for answer in answers if answer.status == 202]
    assert sorted(answer.status for answer in answers) == [202] * 4 + [429] * 6
    assert sorted(answer.headers["RateLimit-Remaining"] for answer in accepted) == ["0", "1", "2", "3"]
    assert await pool.fetchval("SELECT count FROM rate_windows WHERE action = 'jobs'") == 10
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 4
