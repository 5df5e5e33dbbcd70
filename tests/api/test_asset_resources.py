"""Assets as resources (GET /assets/{id}, GET /assets) and jobs that name a style instead of a prompt."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app
from services.api.schemas import ErrorBody
from services.api.settings import ApiSettings
from tests.conftest import Client, bearer, record_asset
from tests.harness.api import JobWaiter, Uploader, job_form, table_counts
from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration


async def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error body of a refusal, checked against the documented shape."""
    assert response.status == status, await response.text()
    body = await response.json()
    ErrorBody.model_validate(body)
    error: dict[str, Any] = body["error"]
    return error


async def walk(api: Client, *, limit: int) -> list[list[str]]:
    """The ids of every page of GET /assets, following next_cursor to its end."""
    pages: list[list[str]] = []
    params = {"limit": str(limit)}
    while True:
        response = await api.get("/assets", params=params)
        assert response.status == 200, await response.text()
        page = await response.json()
        pages.append([asset["id"] for asset in page["assets"]])
        if page["next_cursor"] is None:
            return pages
        params = {"limit": str(limit), "cursor": page["next_cursor"]}


async def test_the_location_of_an_upload_reads_back_what_post_answered(api: Client, photo: bytes) -> None:
    form = FormData()
    form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
    created = await api.post("/assets", data=form)
    assert created.status == 201

    read = await api.get(created.headers["Location"])

    assert read.status == 200
    assert await read.json() == await created.json()


async def test_another_owners_asset_does_not_exist_for_them(api: Client, pool: asyncpg.Pool, upload: Uploader) -> None:
    asset = await upload()
    stranger = await bearer(pool, owner="stranger")

    answer = await api.get(f"/assets/{asset['id']}", headers=stranger)
    missing = await api.get(f"/assets/{uuid.uuid4()}")

    assert (await error_of(answer, 404))["field"] == "asset_id"
    assert (await error_of(missing, 404))["field"] == "asset_id"
    assert (await answer.json())["error"]["code"] == (await missing.json())["error"]["code"]


@pytest.mark.parametrize("asset_id", ["not-a-uuid", "uploadsx", "1", "0" * 33])
async def test_an_id_that_is_no_uuid_is_a_422_naming_it(api: Client, asset_id: str) -> None:
    error = await error_of(await api.get(f"/assets/{asset_id}"), 422)

    assert error["field"] == "asset_id"


async def test_the_direct_upload_path_is_no_asset_id(api: Client) -> None:
    """Its 405 lists exactly the methods the document gives it."""
    for method in ("GET", "OPTIONS", "DELETE"):
        response = await api.request(method, "/assets/uploads")

        await error_of(response, 405)
        assert response.headers["Allow"] == "POST"


async def test_the_list_pages_newest_first_without_gaps_or_repeats(
    api: Client, pool: asyncpg.Pool, upload: Uploader
) -> None:
    uploaded = [(await upload())["id"] for _ in range(5)]
    await record_asset(pool, owner="stranger")

    pages = await walk(api, limit=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [asset_id for page in pages for asset_id in page] == uploaded[::-1]


async def test_the_list_answers_the_body_post_answered_and_defaults_to_25(
    api: Client, pool: asyncpg.Pool, upload: Uploader
) -> None:
    asset = await upload()
    for _ in range(25):
        await record_asset(pool)

    first = await (await api.get("/assets")).json()
    rest = await (await api.get("/assets", params={"cursor": first["next_cursor"]})).json()

    assert len(first["assets"]) == 25 and first["next_cursor"] is not None
    assert rest == {"assets": [asset], "next_cursor": None}


async def test_another_owners_assets_are_never_listed(api: Client, pool: asyncpg.Pool, upload: Uploader) -> None:
    await upload()
    stranger = await bearer(pool, owner="stranger")

    listing = await api.get("/assets", headers=stranger)

    assert listing.status == 200
    assert await listing.json() == {"assets": [], "next_cursor": None}


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not a cursor"},
        {"cursor": "AAAA"},
        {"cursor": ""},
        {"cursor": "A" * 600},
        {"cursor": _cursor(f"2024-01-01T00:00:00|{uuid.uuid4()}")},  # a naive time
        {"cursor": _cursor(f"9999-12-31T23:59:59+00:00|{uuid.uuid4()}")},
        {"cursor": _cursor("2024-01-01T00:00:00+00:00|not-a-uuid")},
        {"cursor": _cursor("x|y|z")},
    ],
)
async def test_a_cursor_the_api_never_issued_is_a_422(api: Client, upload: Uploader, params: dict[str, str]) -> None:
    await upload()

    error = await error_of(await api.get("/assets", params=params), 422)

    assert error["field"] == "cursor"


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1e3"])
async def test_a_limit_out_of_range_is_a_422(api: Client, limit: str) -> None:
    error = await error_of(await api.get("/assets", params={"limit": limit}), 422)

    assert error["field"] == "limit"


async def test_a_parameter_the_list_does_not_take_is_a_422(api: Client) -> None:
    error = await error_of(await api.get("/assets", params={"owner": "stranger"}), 422)

    assert error["field"] == "owner"


async def test_without_a_key_neither_route_answers(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings, upload: Uploader
) -> None:
    asset = await upload()
    anonymous = await aiohttp_client(create_app(api_settings))

    for path in (f"/assets/{asset['id']}", "/assets"):
        response = await anonymous.get(path)
        await error_of(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_job_that_names_a_style_needs_no_prompt(
    api: Client, pool: asyncpg.Pool, upload: Uploader, worker: WorkerFactory, wait_for_job: JobWaiter
) -> None:
    asset = await upload()

    as_form = await api.post("/jobs", data=job_form({"asset_id": asset["id"], "style": "dusk"}))
    as_json = await api.post("/jobs", json={"asset_id": asset["id"], "style": "default", "tier": "free"})

    assert as_form.status == 202, await as_form.text()
    assert as_json.status == 202, await as_json.text()
    jobs = [(await as_form.json())["job"], (await as_json.json())["job"]]
    assert [(job["prompt"], job["style"]) for job in jobs] == [("", "dusk"), ("", "default")]
    stored = await pool.fetch("SELECT prompt FROM jobs WHERE id = ANY($1::uuid[])", [job["id"] for job in jobs])
    assert [row["prompt"] for row in stored] == ["", ""]
    await worker()
    for job in jobs:
        assert (await wait_for_job(job["id"]))["status"] == "succeeded"


async def test_a_job_without_a_prompt_or_a_style_is_a_422_naming_the_prompt(
    api: Client, pool: asyncpg.Pool, upload: Uploader, photo: bytes
) -> None:
    asset = await upload()
    before = await table_counts(pool)

    refusals = [
        await api.post("/jobs", json={"asset_id": asset["id"]}),
        await api.post("/jobs", json={"asset_id": asset["id"], "tier": "premium"}),
        await api.post("/jobs", data=job_form({"asset_id": asset["id"], "tier": "free"})),
        await api.post("/jobs", data=job_form({"tier": "free"}, file=photo)),
        await api.post("/jobs", json={"asset_id": asset["id"], "style": "dusk", "prompt": ""}),
        await api.post("/jobs", json={"asset_id": asset["id"], "style": "dusk", "prompt": None}),
    ]

    for response in refusals:
        assert (await error_of(response, 422))["field"] == "prompt"
    assert await table_counts(pool) == before


async def test_a_style_only_job_replays_under_its_idempotency_key(api: Client, upload: Uploader) -> None:
    asset = await upload()
    headers = {"Idempotency-Key": f"style-only-{uuid.uuid4()}"}
    body = {"asset_id": asset["id"], "style": "dusk"}

    first = await api.post("/jobs", json=body, headers=headers)
    again = await api.post("/jobs", json=body, headers=headers)
    other = await api.post("/jobs", json={**body, "style": "bright_airy"}, headers=headers)
    worded = await api.post("/jobs", json={**body, "prompt": "warmer"}, headers=headers)

    assert first.status == again.status == 202
    assert (await again.json())["job"]["id"] == (await first.json())["job"]["id"]
    assert (await error_of(other, 409))["field"] == "Idempotency-Key"
    assert (await error_of(worded, 409))["field"] == "Idempotency-Key"
