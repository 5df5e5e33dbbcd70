"""The OpenAPI document against the server: its security holds on every operation, and its tightest claims are true."""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app
from services.api.openapi import document
from services.api.routes import ENDPOINTS
from services.api.schemas import ErrorBody
from services.api.settings import ApiSettings
from shared.apikeys import create_key, new_token, revoke
from tests.conftest import Client, bearer
from tests.harness.api import Uploader, job_form, table_counts

Operation = tuple[str, str, dict[str, Any]]
STORED = ("assets", "jobs", "job_events", "outbox")


def operations(spec: dict[str, Any]) -> list[Operation]:
    return [(method.upper(), path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def protected(spec: dict[str, Any]) -> list[Operation]:
    return [(method, path, op) for method, path, op in operations(spec) if op.get("security", spec["security"])]


@pytest.fixture
async def anonymous(aiohttp_client: AiohttpClient, api_settings: ApiSettings) -> Client:
    """The real app behind a client that sends no key unless a request names one."""
    return await aiohttp_client(create_app(api_settings))


def request_for(method: str, path: str, ids: dict[str, str], photo: bytes) -> tuple[str, dict[str, Any]]:
    """A request the operation would accept with a valid key: real ids, a real body."""
    url = re.sub(r"{(\w+)}", lambda match: ids[match[1]], path)
    if (method, path) == ("POST", "/jobs"):
        return url, {"json": {"asset_id": ids["asset_id"], "prompt": "Brighter"}}
    if (method, path) == ("POST", "/assets"):
        form = FormData()
        form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
        return url, {"data": form}
    return url, {}


async def test_the_document_declares_bearer_keys_and_what_each_route_answers() -> None:
    spec = document(ENDPOINTS, version="test")

    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lus_ API key",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    public = {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS if endpoint.public}
    assert {(method, path) for method, path, _ in protected(spec)} == {
        (endpoint.method, endpoint.path) for endpoint in ENDPOINTS
    } - public
    for method, path, op in protected(spec):
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"], (method, path)
        assert "503" in op["responses"], (method, path)
    for endpoint in ENDPOINTS:
        responses = spec["paths"][endpoint.path][endpoint.method.lower()]["responses"]
        if endpoint.limit is not None:
            assert responses["429"]["headers"]["Retry-After"]["required"] is True
            assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= responses["429"]["headers"].keys()
            assert "RateLimit-Remaining" in responses[str(endpoint.status)]["headers"]
        else:
            assert "429" not in responses, endpoint.path
    post_jobs = spec["paths"]["/jobs"]["post"]
    assert {p["name"] for p in post_jobs["parameters"] if p["in"] == "header"} == {"Idempotency-Key", "Prefer"}
    read_job = spec["paths"]["/jobs/{job_id}"]["get"]
    assert [p["name"] for p in read_job["parameters"] if p["in"] == "header"] == ["Prefer"]
    assert read_job["responses"]["200"]["headers"]["Preference-Applied"]["required"] is False
    assert "403" in post_jobs["responses"]
    assert "307" in spec["paths"]["/jobs/{job_id}/output"]["get"]["responses"]


async def test_the_app_serves_the_document_of_its_route_table(anonymous: Client, api_settings: ApiSettings) -> None:
    response = await anonymous.get("/openapi.json")

    assert response.status == 200
    assert await response.json() == document(ENDPOINTS, version=api_settings.app_version)


async def test_the_job_bodies_require_exactly_what_the_server_requires(
    api: Client, pool: asyncpg.Pool, upload: Uploader, photo: bytes
) -> None:
    body = document(ENDPOINTS, version="test")["paths"]["/jobs"]["post"]["requestBody"]["content"]
    as_json, as_form = body["application/json"]["schema"], body["multipart/form-data"]["schema"]
    assert "asset_id" in as_json["required"] and as_json["additionalProperties"] is False
    assert as_json["anyOf"] == as_form["anyOf"] == [{"required": ["prompt"]}, {"required": ["style"]}]
    assert as_json["properties"]["asset_id"] == {**as_json["properties"]["asset_id"], "type": "string"}
    assert as_form["oneOf"] == [{"required": ["asset_id"]}, {"required": ["file"]}]
    assert as_form["additionalProperties"] is False
    asset = await upload()
    before = await table_counts(pool, STORED)

    refused = [
        await api.post("/jobs", json={"prompt": "Brighter"}),
        await api.post("/jobs", json={"asset_id": None, "prompt": "Brighter"}),
        await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "Brighter", "colour": "red"}),
        await api.post("/jobs", data=job_form({"prompt": "Brighter"})),
        await api.post("/jobs", data=job_form({"asset_id": asset["id"], "prompt": "Brighter"}, file=photo)),
        await api.post("/jobs", data=job_form({"asset_id": asset["id"], "prompt": "Brighter", "colour": "red"})),
        await api.post("/jobs", json={"asset_id": asset["id"], "prompt": " \u3000\x1c "}),
        await api.post("/jobs", json={"asset_id": asset["id"], "tier": "free"}),
        await api.post("/jobs", data=job_form({"asset_id": asset["id"]})),
        await api.get("/assets", params={"cursor": "not a cursor"}),
        await api.get("/jobs", params={"cursor": "not a cursor"}),
    ]

    assert [response.status for response in refused] == [422] * len(refused)
    for response in refused:
        ErrorBody.model_validate(await response.json())
    assert await table_counts(pool, STORED) == before


async def test_every_protected_operation_refuses_a_missing_or_foreign_key(
    anonymous: Client, pool: asyncpg.Pool, upload: Uploader, api: Client, photo: bytes
) -> None:
    asset = await upload()
    job = (await (await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "Brighter"})).json())["job"]
    ids = {"asset_id": asset["id"], "job_id": job["id"], "batch_id": str(uuid.uuid4())}
    revoked_key, revoked_token = await create_key(pool, owner="tester", name="revoked", plan="premium")
    await revoke(pool, revoked_key.id)
    refusals: dict[str, dict[str, str]] = {
        "no header": {},
        "another scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "an empty bearer": {"Authorization": "Bearer "},
        "not a Luster key": {"Authorization": f"Bearer {uuid.uuid4().hex}"},
        "a key never issued": {"Authorization": f"Bearer {new_token()}"},
        "a revoked key": {"Authorization": f"Bearer {revoked_token}"},
    }
    before = await table_counts(pool, STORED)
    spec = document(ENDPOINTS, version="test")

    for method, path, _ in protected(spec):
        for what, headers in refusals.items():
            url, body = request_for(method, path, ids, photo)
            response = await anonymous.request(method, url, headers=headers, **body)
            assert response.status == 401, (method, path, what, await response.text())
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path, what)
            ErrorBody.model_validate(await response.json())

    assert await table_counts(pool, STORED) == before


async def test_another_owners_key_sees_none_of_it(
    anonymous: Client, pool: asyncpg.Pool, upload: Uploader, api: Client
) -> None:
    asset = await upload()
    job = (await (await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "Brighter"})).json())["job"]
    stranger = await bearer(pool, owner="stranger")
    before = await table_counts(pool, STORED)

    answers = {
        "read": await anonymous.get(f"/jobs/{job['id']}", headers=stranger),
        "output": await anonymous.get(f"/jobs/{job['id']}/output", headers=stranger),
        "cancel": await anonymous.post(f"/jobs/{job['id']}/cancel", headers=stranger),
        "complete": await anonymous.post(f"/assets/{asset['id']}/complete", headers=stranger),
        "submit": await anonymous.post("/jobs", json={"asset_id": asset["id"], "prompt": "Brighter"}, headers=stranger),
    }
    listing = await anonymous.get("/jobs", headers=stranger)

    assert {what: response.status for what, response in answers.items()} == dict.fromkeys(answers, 404)
    assert listing.status == 200 and (await listing.json())["jobs"] == []
    assert await table_counts(pool, STORED) == before
    assert (await (await api.get(f"/jobs/{job['id']}")).json())["job"]["status"] == "queued"


async def test_a_refusal_over_the_rate_limit_carries_the_documented_headers(
    anonymous: Client, pool: asyncpg.Pool, photo: bytes
) -> None:
    key = await bearer(pool, requests_per_minute=1)
    documented = document(ENDPOINTS, version="test")["paths"]["/assets"]["post"]["responses"]
    form = FormData()
    form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
    first = await anonymous.post("/assets", data=form, headers=key)
    assert first.status == 201
    before = await table_counts(pool, STORED)

    second = await anonymous.post("/assets", data=form, headers=key)

    assert second.status == 429
    ErrorBody.model_validate(await second.json())
    for name, header in documented["429"]["headers"].items():
        assert int(second.headers[name]) >= 0, name
        assert header["schema"]["type"] == "integer"
    assert int(second.headers["Retry-After"]) >= 1
    assert {name: first.headers[name] for name in documented["201"]["headers"]}
    assert await table_counts(pool, STORED) == before


async def test_a_method_the_document_does_not_list_is_405_with_allow(api: Client) -> None:
    response = await api.delete("/jobs")

    assert response.status == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
