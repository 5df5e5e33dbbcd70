"""API keys, owners, plans, limits and CORS: what a stranger, a neighbour and a flood each get."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app
from services.api.routes import ENDPOINTS
from services.api.settings import ApiSettings
from shared import apikeys
from tests.conftest import Client, bearer
from tests.harness.api import ApiFactory, Submitter, Uploader, job_form, table_counts

pytestmark = pytest.mark.integration

NOT_FOUND_ID = "00000000-0000-4000-8000-000000000000"
ROOT = Path(__file__).resolve().parents[2]


def concrete(path: str) -> str:
    return re.sub(r"{\w+}", NOT_FOUND_ID, path)


@pytest.fixture
async def anonymous(aiohttp_client: AiohttpClient, api_settings: ApiSettings) -> Client:
    """The api as a stranger reaches it: no key at all."""
    return await aiohttp_client(create_app(api_settings))


async def as_(aiohttp_client: AiohttpClient, settings: ApiSettings, headers: dict[str, str]) -> Client:
    return await aiohttp_client(create_app(settings), headers=headers)


async def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = (await response.json())["error"]
    return body


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if not e.public], ids=lambda e: f"{e.method} {e.path}")
async def test_every_private_route_refuses_a_stranger(anonymous: Client, endpoint: Any, pool: asyncpg.Pool) -> None:
    before = await table_counts(pool)

    response = await anonymous.request(endpoint.method, concrete(endpoint.path), data=job_form({"prompt": "x"}))

    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await error_of(response))["code"] == "unauthenticated"
    assert await table_counts(pool) == before


async def test_a_stranger_hears_401_before_anything_about_its_headers(anonymous: Client, pool: asyncpg.Pool) -> None:
    """Found by schemathesis (ST203): a malformed Idempotency-Key without a key was answered 422."""
    for key in ("k" * 256, "caf\u00e9"):
        response = await anonymous.post("/jobs", json={"prompt": "x"}, headers={"Idempotency-Key": key})

        assert response.status == 401
        assert (await error_of(response))["code"] == "unauthenticated"
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer lus_not-a-key-anyone-was-given",
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "lus_without_scheme",
        "Bearer lus_" + "x" * 500,
    ],
)
async def test_a_key_that_is_not_one_is_refused(anonymous: Client, authorization: str) -> None:
    response = await anonymous.get("/jobs", headers={"Authorization": authorization})

    assert response.status == 401
    assert (await error_of(response))["field"] == "Authorization"


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs"])
async def test_health_and_the_documents_stay_public(anonymous: Client, path: str) -> None:
    assert (await anonymous.get(path)).status == 200


async def test_a_revoked_key_stops_working_at_once_on_every_instance(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool
) -> None:
    key, token = await apikeys.create_key(pool, owner="acme", name="site", plan="free")
    headers = {"Authorization": f"Bearer {token}"}
    one, two = [await as_(aiohttp_client, api_settings, headers) for _ in range(2)]
    assert (await one.get("/jobs")).status == 200
    assert (await two.get("/jobs")).status == 200

    await apikeys.revoke(pool, key.id)

    assert (await one.get("/jobs")).status == 401
    assert (await two.get("/jobs")).status == 401


async def test_a_key_records_when_it_was_last_used(api: Client, pool: asyncpg.Pool) -> None:
    assert (await api.get("/jobs")).status == 200

    assert await pool.fetchval("SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL") == 1


async def test_the_token_is_stored_only_as_a_hash(pool: asyncpg.Pool) -> None:
    _, token = await apikeys.create_key(pool, owner="acme", name="site", plan="free")

    row = await pool.fetchrow("SELECT * FROM api_keys")
    assert row is not None
    assert all(token not in str(value) for value in dict(row).values())
    assert token.startswith("lus_") and len(token) >= 40


async def test_another_owners_jobs_and_assets_do_not_exist_for_you(
    aiohttp_client: AiohttpClient,
    api_settings: ApiSettings,
    upload: Uploader,
    submit: Submitter,
    pool: asyncpg.Pool,
) -> None:
    asset = await upload()
    job = await submit(asset["id"])
    neighbour = await as_(aiohttp_client, api_settings, await bearer(pool, owner="neighbour"))
    before = await table_counts(pool)

    for method, path in [
        ("GET", f"/jobs/{job['id']}"),
        ("GET", f"/jobs/{job['id']}/output"),
        ("POST", f"/jobs/{job['id']}/cancel"),
    ]:
        response = await neighbour.request(method, path)
        assert response.status == 404, (method, path)
        assert (await error_of(response))["field"] == "job_id"
    listed = await neighbour.get("/jobs")
    assert (await listed.json())["jobs"] == []
    stolen = await neighbour.post("/jobs", json={"asset_id": asset["id"], "prompt": "mine now"})
    assert stolen.status == 404
    assert (await error_of(stolen))["field"] == "asset_id"
    assert await table_counts(pool) == before
    assert await pool.fetchval("SELECT status FROM jobs WHERE id = $1", uuid.UUID(job["id"])) == "queued"


async def test_a_plan_without_premium_cannot_ask_for_it(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    free = await as_(aiohttp_client, api_settings, await bearer(pool, plan="free"))
    before = await table_counts(pool)

    response = await free.post("/jobs", data=job_form({"prompt": "Test enhancement", "tier": "premium"}, file=photo))

    assert response.status == 403
    error = await error_of(response)
    assert (error["code"], error["field"]) == ("tier_not_in_plan", "tier")
    assert await table_counts(pool) == before
    assert (await free.post("/jobs", data=job_form({"prompt": "x", "tier": "free"}, file=photo))).status == 202


async def test_an_idempotency_key_is_each_owners_own(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    headers = {"Idempotency-Key": "listing-42"}
    jobs = []
    for owner in ("acme", "globex"):
        client = await as_(aiohttp_client, api_settings, await bearer(pool, owner=owner))
        response = await client.post("/jobs", data=job_form({"prompt": "same words"}, file=photo), headers=headers)
        assert response.status == 202
        jobs.append((await response.json())["job"]["id"])

    assert jobs[0] != jobs[1]


async def test_an_idempotency_key_names_its_job_only_until_it_expires(
    api_factory: ApiFactory, upload: Uploader, pool: asyncpg.Pool
) -> None:
    api = await api_factory(idempotency_ttl_s=3600.0)
    asset = await upload()
    body, headers = {"asset_id": asset["id"], "prompt": "same"}, {"Idempotency-Key": "k-1"}
    first = (await (await api.post("/jobs", json=body, headers=headers)).json())["job"]
    assert (await (await api.post("/jobs", json=body, headers=headers)).json())["job"]["id"] == first["id"]
    await pool.execute("UPDATE jobs SET created_at = created_at - interval '2 hours'")  # past its ttl

    later = (await (await api.post("/jobs", json=body, headers=headers)).json())["job"]

    assert later["id"] != first["id"]
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE idempotency_key = 'k-1'") == 1


async def test_a_flood_of_jobs_is_refused_with_retry_after_on_every_instance(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    headers = await bearer(pool, owner="flooder", requests_per_minute=3)
    one, two = [await as_(aiohttp_client, api_settings, headers) for _ in range(2)]
    form = FormData()
    form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
    asset = (await (await one.post("/assets", data=form)).json())["asset"]  # uploads have a budget of their own

    answers = [
        await client.post("/jobs", json={"prompt": "again", "asset_id": asset["id"]}) for client in (one, two) * 2
    ]

    assert [answer.status for answer in answers] == [202, 202, 202, 429]
    refused = answers[-1]
    assert (await error_of(refused))["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Limit"] == "3" and refused.headers["RateLimit-Remaining"] == "0"
    assert answers[0].headers["RateLimit-Remaining"] == "2"
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 3


async def test_jobs_in_flight_are_capped_per_key(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    client = await as_(aiohttp_client, api_settings, await bearer(pool, owner="busy", jobs_in_flight=2))
    statuses = [(await client.post("/jobs", data=job_form({"prompt": "x"}, file=photo))).status for _ in range(3)]

    assert statuses == [202, 202, 429]
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 2
    assert await pool.fetchval("SELECT count(*) FROM assets") == 2  # the refused photo was never stored


async def test_a_limit_lowered_below_the_jobs_in_flight_still_refuses_and_says_the_limit(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    """The jobs in flight are counted up to the limit only (limits.py): past it, the answer stays a refusal."""
    client = await as_(aiohttp_client, api_settings, await bearer(pool, owner="busy", jobs_in_flight=4))
    for _ in range(4):
        assert (await client.post("/jobs", data=job_form({"prompt": "x"}, file=photo))).status == 202
    await pool.execute("UPDATE api_keys SET jobs_in_flight = 2 WHERE owner = 'busy'")

    refused = await client.post("/jobs", data=job_form({"prompt": "x"}, file=photo))

    assert refused.status == 429
    error = await error_of(refused)
    assert error["code"] == "too_many_jobs_in_flight" and error["message"].startswith("2 jobs of this key")
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 4


async def test_a_key_without_its_own_in_flight_limit_has_the_instances(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    settings = api_settings.model_copy(update={"jobs_in_flight": 1})
    client = await as_(aiohttp_client, settings, await bearer(pool, owner="plain", jobs_in_flight=None))
    statuses = [(await client.post("/jobs", data=job_form({"prompt": "x"}, file=photo))).status for _ in range(2)]

    assert statuses == [202, 429]


async def test_bytes_stored_a_day_are_capped_per_key(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool, photo: bytes
) -> None:
    client = await as_(aiohttp_client, api_settings, await bearer(pool, owner="hoarder", bytes_per_day=len(photo) + 10))

    def form() -> FormData:
        data = FormData()
        data.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
        return data

    assert (await client.post("/assets", data=form())).status == 201
    refused = await client.post("/assets", data=form())

    assert refused.status == 429
    assert (await error_of(refused))["code"] == "daily_bytes_exceeded"
    assert int(refused.headers["Retry-After"]) <= 86400
    assert await pool.fetchval("SELECT count(*) FROM assets") == 1


async def test_cors_answers_only_the_allowed_origins(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, pool: asyncpg.Pool
) -> None:
    settings = api_settings.model_copy(update={"cors_allowed_origins": ["https://agent.example"]})
    client = await aiohttp_client(create_app(settings))
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}

    allowed = await client.options("/jobs", headers={"Origin": "https://agent.example", **preflight})
    other = await client.options("/jobs", headers={"Origin": "https://evil.example", **preflight})

    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://agent.example"
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_a_cross_site_form_post_changes_nothing(anonymous: Client, pool: asyncpg.Pool, photo: bytes) -> None:
    before = await table_counts(pool)

    response = await anonymous.post(
        "/jobs", data=job_form({"prompt": "x"}, file=photo), headers={"Origin": "https://evil.example"}
    )

    assert response.status == 401
    assert "Access-Control-Allow-Origin" not in response.headers
    assert await table_counts(pool) == before


def test_no_origin_is_allowed_unless_configured() -> None:
    assert ApiSettings().cors_allowed_origins == []
    assert ApiSettings(cors_allowed_origins="https://a.example, https://b.example").cors_allowed_origins == [
        "https://a.example",
        "https://b.example",
    ]


def _cli(*arguments: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.api.apikeys", *arguments],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_cli_creates_lists_and_revokes_keys(database_url: str, pool: asyncpg.Pool, anonymous: Client) -> None:
    created = _cli("create", "--owner", "acme", "--plan", "premium", "--name", "website", database_url=database_url)
    assert created.returncode == 0, created.stderr
    description, token = created.stdout.strip().splitlines()
    key_id = description.split()[0]
    assert (await anonymous.get("/jobs", headers={"Authorization": f"Bearer {token}"})).status == 200

    listed = _cli("list", "--owner", "acme", database_url=database_url)
    assert key_id in listed.stdout and token not in listed.stdout
    revoked = _cli("revoke", key_id, database_url=database_url)

    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert (await anonymous.get("/jobs", headers={"Authorization": f"Bearer {token}"})).status == 401
    assert _cli("revoke", str(uuid.uuid4()), database_url=database_url).returncode == 1
