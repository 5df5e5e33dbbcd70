"""The job endpoints, health, and the OpenAPI document, against the real app, PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import io
import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection
from PIL import Image

from services.api import keys
from services.api.routes import ENDPOINTS, UNDOCUMENTED
from services.api.schemas import PROMPT_MAX_LENGTH, JobCreate
from shared.domain import Tier
from shared.events import EventType
from shared.messages import OutgoingMessage
from shared.topology import Topology
from tests.harness.api import ApiFactory, all_marked_published, job_form, published
from tests.harness.broker import queue_counts
from tests.harness.poll import poll

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import JobWaiter, Submitter, Uploader
    from tests.harness.broker import TapFactory
    from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration

JOB_FIELDS = {
    "id",
    "status",
    "tier",
    "style",
    "prompt",
    "asset_id",
    "attempts",
    "output_url",
    "error",
    "created_at",
    "started_at",
    "completed_at",
}


async def _job_rows(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs"))


async def test_multipart_exactly_like_the_guides_curl_queues_a_premium_job(
    api: Client, upload: Uploader, pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    asset = await upload()
    form = job_form({"asset_id": asset["id"], "prompt": "Test enhancement", "tier": "premium"})

    response = await api.post("/jobs", data=form)

    assert response.status == 202, await response.text()
    job = (await response.json())["job"]
    assert response.headers["Location"] == f"/jobs/{job['id']}"
    assert job.keys() >= JOB_FIELDS
    assert job | {"id": None, "created_at": None} == job | {
        "id": None,
        "status": "queued",
        "tier": "premium",
        "style": "default",
        "prompt": "Test enhancement",
        "asset_id": asset["id"],
        "attempts": 0,
        "output_url": None,
        "error": None,
        "created_at": None,
        "started_at": None,
        "completed_at": None,
    }
    assert await _job_rows(pool) == 1
    # The job.queued event leaves after the 202 (the job was accepted once committed): once the api has
    # settled its publishes, it is in the premium work queue, confirmed.
    await published(api)
    assert (await queue_counts(amqp, topology.work_queue(Tier.PREMIUM)))[0] == 1
    assert (await queue_counts(amqp, topology.work_queue(Tier.FREE)))[0] == 0
    await poll(all_marked_published(pool), what="the outbox rows to be marked published")


def _hold_publishes(api: Client, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """The api's broker confirms nothing until the returned event is set: a broker slow to answer."""
    broker, confirmed = api.app[keys.BROKER], asyncio.Event()
    publish = broker.publish_raw

    async def held_publish(message: OutgoingMessage) -> None:
        await confirmed.wait()
        await publish(message)

    monkeypatch.setattr(broker, "publish_raw", held_publish)
    return confirmed


async def test_a_job_is_accepted_once_committed_without_waiting_for_the_broker(
    api: Client,
    upload: Uploader,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asset = await upload()
    confirmed = _hold_publishes(api, monkeypatch)

    async with asyncio.timeout(15):  # an answer that waited for the held publish would never come
        response = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "x", "tier": "premium"})

    assert response.status == 202, await response.text()
    assert await _job_rows(pool) == 1
    assert (await queue_counts(amqp, topology.work_queue(Tier.PREMIUM)))[0] == 0  # its announcement is held
    confirmed.set()
    await published(api)
    assert (await queue_counts(amqp, topology.work_queue(Tier.PREMIUM)))[0] == 1
    assert await all_marked_published(pool)()


async def test_a_stopping_api_publishes_what_it_accepted_before_its_broker_closes(
    api_factory: ApiFactory,
    upload: Uploader,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asset, stopping = await upload(), await api_factory()
    confirmed = _hold_publishes(stopping, monkeypatch)
    publisher = stopping.app[keys.PUBLISHER]
    settle = publisher.settle

    async def confirm_then_settle() -> None:
        confirmed.set()  # the broker answers once the stop reaches the publishes: the broker is still open
        await settle()

    monkeypatch.setattr(publisher, "settle", confirm_then_settle)
    response = await stopping.post("/jobs", json={"asset_id": asset["id"], "prompt": "x", "tier": "premium"})
    assert response.status == 202, await response.text()

    await stopping.close()

    assert confirmed.is_set()
    assert (await queue_counts(amqp, topology.work_queue(Tier.PREMIUM)))[0] == 1


async def test_a_json_body_is_accepted_too(api: Client, upload: Uploader) -> None:
    asset = await upload()

    response = await api.post(
        "/jobs", json={"asset_id": asset["id"], "prompt": "brighter please", "tier": "free", "style": "bright_airy"}
    )

    assert response.status == 202, await response.text()
    job = (await response.json())["job"]
    assert (job["tier"], job["style"], job["prompt"]) == ("free", "bright_airy", "brighter please")
    assert response.headers["Location"] == f"/jobs/{job['id']}"


async def test_the_file_inline_uploads_and_enqueues_in_one_call(api: Client, photo: bytes, pool: asyncpg.Pool) -> None:
    form = job_form({"prompt": "Make it pop", "tier": "premium", "style": "dusk"}, file=photo)

    response = await api.post("/jobs", data=form)

    assert response.status == 202, await response.text()
    job = (await response.json())["job"]
    asset = await pool.fetchrow("SELECT * FROM assets")
    assert asset is not None
    assert job["asset_id"] == str(asset["id"])
    assert (asset["size_bytes"], asset["width"], asset["height"]) == (len(photo), 400, 300)
    assert (job["style"], job["tier"]) == ("dusk", "premium")


async def test_tier_and_style_default_to_free_and_default(api: Client, upload: Uploader) -> None:
    asset = await upload()

    response = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "tidy"})

    assert response.status == 202
    job = (await response.json())["job"]
    assert (job["tier"], job["style"]) == ("free", "default")


async def test_same_idempotency_key_and_body_give_the_same_job(
    api: Client, upload: Uploader, pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    asset = await upload()
    fields = {"asset_id": asset["id"], "prompt": "Test enhancement", "tier": "premium"}
    headers = {"Idempotency-Key": "listing-42-front"}

    first = await api.post("/jobs", data=job_form(fields), headers=headers)
    again = await api.post("/jobs", data=job_form(fields), headers=headers)
    as_json = await api.post("/jobs", json=fields, headers=headers)

    assert [first.status, again.status, as_json.status] == [202, 202, 202]
    ids = {(await response.json())["job"]["id"] for response in (first, again, as_json)}
    assert len(ids) == 1
    assert await _job_rows(pool) == 1
    await published(api)
    assert (await queue_counts(amqp, topology.work_queue(Tier.PREMIUM)))[0] == 1


async def test_same_idempotency_key_with_a_different_body_is_a_conflict(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    asset = await upload()
    headers = {"Idempotency-Key": "listing-42-front"}
    first = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "one"}, headers=headers)

    second = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "two"}, headers=headers)

    assert first.status == 202
    assert second.status == 409
    error = (await second.json())["error"]
    assert (error["code"], error["field"]) == ("conflict", "Idempotency-Key")
    assert await _job_rows(pool) == 1


async def test_concurrent_requests_with_one_key_make_one_job(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    asset = await upload()
    body = {"asset_id": asset["id"], "prompt": "Test enhancement", "tier": "premium"}

    responses = await asyncio.gather(
        *(api.post("/jobs", json=body, headers={"Idempotency-Key": "racing"}) for _ in range(6))
    )

    assert [response.status for response in responses] == [202] * 6
    assert len({(await response.json())["job"]["id"] for response in responses}) == 1
    assert await _job_rows(pool) == 1


async def test_idempotent_inline_upload_stores_the_photo_once(api: Client, photo: bytes, pool: asyncpg.Pool) -> None:
    fields = {"prompt": "Test enhancement"}
    headers = {"Idempotency-Key": "inline-once"}

    first = await api.post("/jobs", data=job_form(fields, file=photo), headers=headers)
    again = await api.post("/jobs", data=job_form(fields, file=photo), headers=headers)

    assert (first.status, again.status) == (202, 202)
    assert (await first.json())["job"]["id"] == (await again.json())["job"]["id"]
    assert await pool.fetchval("SELECT count(*) FROM assets") == 1
    assert await _job_rows(pool) == 1


async def test_get_job_has_the_documented_shape(api: Client, upload: Uploader, submit: Submitter) -> None:
    asset = await upload()
    submitted = await submit(asset["id"], prompt="Warmer, please", tier="premium", style="dusk")

    response = await api.get(f"/jobs/{submitted['id']}")

    assert response.status == 200
    job = (await response.json())["job"]
    assert job.keys() >= JOB_FIELDS
    # Only GET reads where the job stands (tests/api/test_progress.py): the only job, queued, no history.
    waiting = {"queue_position": 0, "eta_seconds": None}
    no_timings: dict[str, Any] = {
        "timings": {"queue_wait_s": None, "processing_s": None, "total_s": None, "attempts": []}
    }
    assert job == submitted | waiting | no_timings
    assert (job["prompt"], job["tier"], job["style"], job["status"]) == ("Warmer, please", "premium", "dusk", "queued")
    assert datetime.fromisoformat(job["created_at"]).tzinfo is not None


async def _walk(api: Client, query: str, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        response = await api.get(f"/jobs?limit={limit}{query}{suffix}")
        assert response.status == 200, await response.text()
        body = await response.json()
        pages.append(body["jobs"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


async def test_list_walks_every_page_without_duplicates_or_misses(
    api: Client, upload: Uploader, submit: Submitter
) -> None:
    asset = await upload()
    created = [await submit(asset["id"], prompt=f"job {n}", tier="premium" if n % 3 == 0 else "free") for n in range(8)]

    pages = await _walk(api, "", limit=3)

    assert [len(page) for page in pages] == [3, 3, 2]
    seen = [job["id"] for page in pages for job in page]
    assert seen == [job["id"] for job in reversed(created)]  # newest first, each exactly once
    premium = [job["id"] for page in await _walk(api, "&tier=premium", limit=2) for job in page]
    assert premium == [job["id"] for job in reversed(created) if job["tier"] == "premium"]


async def test_list_filters_by_status(api: Client, upload: Uploader, submit: Submitter) -> None:
    asset = await upload()
    created = [await submit(asset["id"]) for _ in range(5)]
    canceled = {created[1]["id"], created[3]["id"]}
    for job_id in canceled:
        assert (await api.post(f"/jobs/{job_id}/cancel")).status == 200

    only_canceled = [job for page in await _walk(api, "&status=canceled", limit=1) for job in page]
    only_queued = [job for page in await _walk(api, "&status=queued", limit=2) for job in page]

    assert {job["id"] for job in only_canceled} == canceled
    assert {job["status"] for job in only_canceled} == {"canceled"}
    assert len(only_queued) == 3
    assert {job["id"] for job in only_queued}.isdisjoint(canceled)


@pytest.mark.parametrize("limit", ["1000", "101", "0", "-1", "many"])
async def test_the_page_size_is_bounded(api: Client, limit: str) -> None:
    response = await api.get(f"/jobs?limit={limit}")

    assert response.status == 422
    assert (await response.json())["error"]["field"] == "limit"


async def test_cancel_a_queued_job_then_again(
    api: Client, upload: Uploader, submit: Submitter, pool: asyncpg.Pool, tap: TapFactory
) -> None:
    asset = await upload()
    job = await submit(asset["id"])
    canceled_events = await tap(EventType.JOB_CANCELED.value)

    first = await api.post(f"/jobs/{job['id']}/cancel")
    second = await api.post(f"/jobs/{job['id']}/cancel")

    assert first.status == 200
    body = (await first.json())["job"]
    assert body["status"] == "canceled"
    assert body["completed_at"] is not None
    assert second.status == 409
    assert (await second.json())["error"]["code"] == "conflict"
    history = await pool.fetch(
        "SELECT from_status, to_status FROM job_events WHERE job_id = $1 ORDER BY id", uuid.UUID(job["id"])
    )
    assert [tuple(row) for row in history] == [(None, "queued"), ("queued", "canceled")]
    assert [event.job_id for event in await canceled_events.events()] == [uuid.UUID(job["id"])]


async def test_output_of_a_queued_job_is_a_conflict(api: Client, upload: Uploader, submit: Submitter) -> None:
    job = await submit((await upload())["id"])

    response = await api.get(f"/jobs/{job['id']}/output")

    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conflict"


async def test_a_finished_job_serves_its_output_and_cannot_be_canceled(
    api: Client,
    upload: Uploader,
    submit: Submitter,
    worker: WorkerFactory,
    wait_for_job: JobWaiter,
    photo: bytes,
) -> None:
    job = await submit((await upload())["id"])
    await worker()

    done = await wait_for_job(job["id"])

    assert done["status"] == "succeeded", done
    assert done["output_url"] == f"/jobs/{job['id']}/output"
    output = await api.get(done["output_url"])
    assert output.status == 200
    assert output.content_type == "image/jpeg"
    data = await output.read()
    assert data != photo
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("JPEG", (1024, 768))
    first = await api.get(done["output_url"], headers={"Range": "bytes=0-99"})
    assert first.status == 206 and await first.read() == data[:100]
    beyond = await api.get(done["output_url"], headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    assert (await beyond.json())["error"]["code"] == "range_not_satisfiable"
    cancel = await api.post(f"/jobs/{job['id']}/cancel")
    assert cancel.status == 409
    assert (await api.get(f"/jobs/{job['id']}")).status == 200
    assert (await (await api.get(f"/jobs/{job['id']}")).json())["job"]["status"] == "succeeded"


async def test_health_reports_both_dependencies(api: Client) -> None:
    response = await api.get("/health")

    assert response.status == 200
    assert await response.json() == {
        "status": "healthy",
        "services": {"database": "healthy", "broker": "healthy"},
        "version": "0.1.0",
        "environment": "test",
    }


async def test_health_names_the_broker_when_it_is_gone(api: Client) -> None:
    # The app's own connection closing is what a broker outage looks like from inside the API.
    await api.app[keys.BROKER].connection.close()

    response = await api.get("/health")

    assert response.status == 503
    body = await response.json()
    assert body["status"] == "unhealthy"
    assert body["services"] == {"database": "healthy", "broker": "unhealthy"}


async def test_health_names_the_database_when_it_is_gone(api: Client) -> None:
    await api.app[keys.POOL].close()

    response = await api.get("/health")

    assert response.status == 503
    assert (await response.json())["services"] == {"database": "unhealthy", "broker": "healthy"}


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


async def test_openapi_is_generated_from_the_models_and_lists_every_route(api: Client) -> None:
    response = await api.get("/openapi.json")

    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert {"title", "version"} <= document["info"].keys()
    schemas = document["components"]["schemas"]
    job_create = schemas["JobCreate"]
    assert job_create["properties"]["prompt"]["maxLength"] == PROMPT_MAX_LENGTH
    expected = JobCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    expected.pop("$defs", None)
    assert job_create == expected
    for ref in _refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    undocumented = {(method, path) for method, path, _ in UNDOCUMENTED}
    served = {
        (route.method, route.resource.canonical)
        for route in api.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served - undocumented == documented
    assert documented == {(endpoint.method, endpoint.path) for endpoint in ENDPOINTS}
    post_jobs = document["paths"]["/jobs"]["post"]
    assert {"application/json", "multipart/form-data"} <= post_jobs["requestBody"]["content"].keys()
    assert "202" in post_jobs["responses"]


async def test_docs_page_renders_the_document(api: Client) -> None:
    response = await api.get("/docs")

    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert re.search(r"<html", page, re.IGNORECASE)
    assert "/openapi.json" in page
