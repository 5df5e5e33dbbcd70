"""What a request that fails answers: the database gone is a 503 to retry, not a 500."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from shared.http.json_errors import errors


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.exceptions.TargetServerAttributeNotMatched("none of the hosts match the target attribute"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    ],
    ids=["connection-shut-under-a-statement", "no-primary-yet", "server-shutting-down"],
)
async def test_a_database_that_went_away_mid_request_is_a_503_to_retry(
    aiohttp_client: AiohttpClient, error: Exception
) -> None:
    async def jobs(_: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[errors])
    app.router.add_post("/jobs", jobs)
    client = await aiohttp_client(app)

    response = await client.post("/jobs")

    assert response.status == 503
    assert (await response.json())["error"]["code"] == "dependency_unavailable"
