"""Webhooks at the api: a target is checked before anything is stored, the request's webhook is part of
its idempotency, the job shows its webhook, and each key reads and rotates its own signing secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg
import pytest

from shared.apikeys import WEBHOOK_SECRET_PREFIX
from tests.conftest import bearer
from tests.harness.api import job_form

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import ApiFactory, Uploader

pytestmark = pytest.mark.integration

LOCAL_RECEIVER = "http://127.0.0.1:9/hooks"


async def _rows(pool: asyncpg.Pool) -> tuple[int, int]:
    jobs = await pool.fetchval("SELECT count(*) FROM jobs")
    outbox = await pool.fetchval("SELECT count(*) FROM outbox")
    return int(jobs), int(outbox)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (LOCAL_RECEIVER, "not a public address"),
        ("http://localhost:8080/hooks", "not a public address"),
        ("http://[::1]/hooks", "not a public address"),
        ("http://[::ffff:10.0.0.1]/hooks", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://10.1.2.3/hooks", "not a public address"),
        ("http://100.64.0.1/hooks", "not a public address"),
        ("http://0.0.0.0/hooks", "not a public address"),
        ("https://user:secret@hooks.example.com/x", "credentials"),
        ("ftp://hooks.example.com/x", None),
        ("https://hooks.example.com/x#part", "fragment"),
        ("https://hooks.invalid/x", "does not resolve"),
        ("https://[not-an-ip]/x", "not a URL"),
    ],
)
async def test_a_target_luster_must_not_call_is_refused_before_anything_is_stored(
    api: Client, upload: Uploader, pool: asyncpg.Pool, url: str, problem: str | None
) -> None:
    asset = await upload()
    before = await _rows(pool)
    response = await api.post("/jobs", json={"asset_id": asset["id"], "style": "default", "webhook_url": url})
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error["field"] == "webhook_url"
    if problem is not None:
        assert problem in error["message"]
    assert await _rows(pool) == before


async def test_bad_event_filters_are_refused(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    asset = await upload()
    for events in (["finished"], [], "started,,failed", "started,\tfailed", ["started", 5]):
        body = {"asset_id": asset["id"], "style": "default", "webhook_url": LOCAL_RECEIVER, "webhook_events": events}
        response = await api.post("/jobs", json=body)
        assert response.status == 422, (events, await response.text())
        assert (await response.json())["error"]["field"].startswith("webhook_events")
    assert await _rows(pool) == (0, 0)


async def test_a_job_keeps_its_webhook_and_shows_it(api_factory: ApiFactory, upload: Uploader) -> None:
    api = await api_factory(webhook_allow_private_targets=True)
    asset = await upload()
    form_events = "started, canceled,started"
    fields = {"asset_id": asset["id"], "style": "default", "webhook_url": LOCAL_RECEIVER, "webhook_events": form_events}
    response = await api.post("/jobs", data=job_form(fields))
    assert response.status == 202, await response.text()
    job = (await response.json())["job"]
    shown = (await (await api.get(f"/jobs/{job['id']}")).json())["job"]
    assert shown["webhook"] == {"url": LOCAL_RECEIVER, "events": ["canceled", "started"], "deliveries": []}

    plain = await api.post("/jobs", json={"asset_id": asset["id"], "style": "default", "webhook_url": LOCAL_RECEIVER})
    listed = (await (await api.get("/jobs")).json())["jobs"]
    assert [item["webhook"] for item in listed] == [
        {"url": LOCAL_RECEIVER, "events": ["succeeded", "failed", "canceled"], "deliveries": []},
        {"url": LOCAL_RECEIVER, "events": ["canceled", "started"], "deliveries": []},
    ]
    assert plain.status == 202


async def test_the_webhook_is_part_of_what_an_idempotency_key_names(api_factory: ApiFactory, upload: Uploader) -> None:
    api = await api_factory(webhook_allow_private_targets=True)
    asset = await upload()
    body = {"asset_id": asset["id"], "style": "default", "webhook_url": LOCAL_RECEIVER}
    first = await api.post("/jobs", json=body, headers={"Idempotency-Key": "photo-1"})
    again = await api.post("/jobs", json=body, headers={"Idempotency-Key": "photo-1"})
    other = await api.post(
        "/jobs", json={**body, "webhook_url": "http://127.0.0.1:10/x"}, headers={"Idempotency-Key": "photo-1"}
    )
    assert (first.status, again.status, other.status) == (202, 202, 409)
    assert (await first.json())["job"]["id"] == (await again.json())["job"]["id"]


async def test_each_key_reads_and_rotates_only_its_own_secret(api: Client, pool: asyncpg.Pool) -> None:
    response = await api.get("/webhooks/secret")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    mine = (await response.json())["webhook_secret"]
    assert mine["secret"].startswith(WEBHOOK_SECRET_PREFIX)

    other_key = await bearer(pool, owner="someone-else")
    theirs = (await (await api.get("/webhooks/secret", headers=other_key)).json())["webhook_secret"]
    assert theirs["key_id"] != mine["key_id"]
    assert theirs["secret"] != mine["secret"]

    rotated = (await (await api.post("/webhooks/secret/rotate")).json())["webhook_secret"]
    assert rotated["key_id"] == mine["key_id"]
    assert rotated["secret"] not in (mine["secret"], theirs["secret"])
    assert (await (await api.get("/webhooks/secret")).json())["webhook_secret"] == rotated
    assert (await (await api.get("/webhooks/secret", headers=other_key)).json())["webhook_secret"] == theirs

    anonymous = await api.get("/webhooks/secret", headers={"Authorization": ""})
    assert anonymous.status == 401
