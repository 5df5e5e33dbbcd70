"""Batches on the real PostgreSQL and RabbitMQ: a listing submitted in one transaction, counted, canceled,
followed as Server-Sent Events and downloaded as one zip, by its owner only."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.api import keys
from services.api.views import batch_streams
from shared import batches, jobstate
from shared.domain import Style, Tier
from shared.errors import NotFound
from shared.jobs import NewJob
from tests.api.test_progress import finished
from tests.conftest import Client, bearer, record_asset
from tests.harness.api import ApiFactory, Uploader, all_marked_published, table_counts
from tests.harness.poll import poll
from tests.harness.worker import WorkerFactory
from tests.worker.photos import encode, house

pytestmark = pytest.mark.integration

STORED = ("batches", "jobs", "job_events", "outbox")
# A public address written as one: check_target resolves it without asking DNS.
PUBLIC_HOOK = "https://93.184.215.14/hooks/luster"


async def assets(upload: Uploader, count: int) -> list[str]:
    return [(await upload())["id"] for _ in range(count)]


def listing(asset_ids: list[str], **more: Any) -> dict[str, Any]:
    return {"jobs": [{"asset_id": asset_id, "prompt": f"Photo {n}"} for n, asset_id in enumerate(asset_ids)], **more}


async def create(api: Client, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await api.post("/batches", json=body, headers=headers)
    assert response.status == 201, await response.text()
    batch: dict[str, Any] = (await response.json())["batch"]
    assert response.headers["Location"] == f"/batches/{batch['id']}"
    return batch


async def read_batch(api: Client, batch_id: str) -> dict[str, Any]:
    response = await api.get(f"/batches/{batch_id}")
    assert response.status == 200, await response.text()
    batch: dict[str, Any] = (await response.json())["batch"]
    return batch


async def completed(api: Client, batch_id: str, *, within: float = 60) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        batch = await read_batch(api, batch_id)
        return batch if batch["status"] == "completed" else {}

    return await poll(done, within=within, what=f"batch {batch_id} to complete")


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """The stream's events as (name, data), until it ends; comments (keepalives) are skipped."""
    name, data = None, ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif not line and name is not None:
            yield name, json.loads(data)
            name = None


def error_of(body: dict[str, Any]) -> tuple[str, str | None]:
    assert body.keys() == {"error"} and {"code", "message"} <= body["error"].keys() <= {"code", "message", "field"}
    return body["error"]["code"], body["error"].get("field")


async def test_a_batch_is_one_transaction_of_jobs_in_the_listings_order(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    ids = await assets(upload, 3)
    body = listing(ids, webhook_url=PUBLIC_HOOK, webhook_events=["succeeded", "failed", "succeeded"])
    body["jobs"][1] = {"asset_id": ids[1], "style": "dusk", "tier": "premium"}
    body["jobs"][2]["webhook_events"] = ["started"]  # a job's own choice stands in for the batch's

    batch = await create(api, body)

    assert [job["asset_id"] for job in batch["jobs"]] == ids
    assert [(job["status"], job["tier"], job["style"]) for job in batch["jobs"]] == [
        ("queued", "free", "default"),
        ("queued", "premium", "dusk"),
        ("queued", "free", "default"),
    ]
    assert (batch["status"], batch["total"], batch["completed_at"]) == ("running", 3, None)
    assert batch["counts"] == {"queued": 3, "processing": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    assert (batch["webhook_url"], batch["webhook_events"]) == (PUBLIC_HOOK, ["failed", "succeeded"])
    key_id = await pool.fetchval("SELECT id FROM api_keys WHERE owner = 'tester'")
    rows = await pool.fetch(
        "SELECT batch_id, api_key_id, webhook_url, webhook_events FROM jobs ORDER BY created_at, id"
    )
    batch_id = uuid.UUID(batch["id"])
    assert [tuple(row) for row in rows] == [
        (batch_id, key_id, PUBLIC_HOOK, ["failed", "succeeded"]),
        (batch_id, key_id, PUBLIC_HOOK, ["failed", "succeeded"]),
        (batch_id, key_id, PUBLIC_HOOK, ["started"]),
    ]
    assert await table_counts(pool, STORED) == {"batches": 1, "jobs": 3, "job_events": 3, "outbox": 3}
    await poll(all_marked_published(pool), what="the outbox rows to be marked published")
    assert await read_batch(api, batch["id"]) == batch


async def test_a_foreign_asset_among_three_writes_nothing(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    ids = await assets(upload, 2)
    foreign = await record_asset(pool, owner="stranger")
    before = await table_counts(pool, STORED)

    response = await api.post("/batches", json=listing([ids[0], str(foreign.id), ids[1]]))

    assert response.status == 404
    body = await response.json()
    assert error_of(body) == ("not_found", "jobs.1.asset_id")
    assert str(foreign.id) in body["error"]["message"]
    assert await table_counts(pool, STORED) == before


async def test_an_asset_gone_mid_batch_rolls_the_whole_batch_back(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    ids = [uuid.UUID(asset_id) for asset_id in await assets(upload, 2)]
    foreign = await record_asset(pool, owner="stranger")
    items = [NewJob(asset_id, "Brighter", Tier.FREE, Style.DEFAULT, "tester") for asset_id in [*ids, foreign.id]]
    before = await table_counts(pool, STORED)

    with pytest.raises(NotFound) as refused:
        await batches.queue_batch(pool, api.app[keys.BROKER], batches.NewBatch("tester"), items)

    assert refused.value.field == "jobs.2.asset_id"
    assert await table_counts(pool, STORED) == before


async def test_every_tier_must_be_in_the_plan(api_factory: ApiFactory, pool: asyncpg.Pool, upload: Uploader) -> None:
    ids = await assets(upload, 2)
    free = await api_factory()
    free.session.headers.update(await bearer(pool, plan="free"))
    body = listing(ids)
    body["jobs"][1]["tier"] = "premium"
    before = await table_counts(pool, STORED)

    response = await free.post("/batches", json=body)

    assert response.status == 403
    assert error_of(await response.json()) == ("tier_not_in_plan", "tier")
    assert await table_counts(pool, STORED) == before


async def test_an_idempotency_key_replays_the_batch_or_refuses_another_request(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    ids = await assets(upload, 2)
    first = await create(api, listing(ids), **{"Idempotency-Key": "listing-42"})

    again = await api.post("/batches", json=listing(ids), headers={"Idempotency-Key": "listing-42"})
    other = await api.post("/batches", json=listing(ids[:1]), headers={"Idempotency-Key": "listing-42"})

    assert again.status == 200
    assert (await again.json())["batch"] == first
    assert again.headers["Location"] == f"/batches/{first['id']}"
    assert other.status == 409
    assert error_of(await other.json()) == ("conflict", "Idempotency-Key")
    assert await table_counts(pool, ("batches", "jobs")) == {"batches": 1, "jobs": 2}


async def test_every_job_counts_against_the_jobs_in_flight(
    api_factory: ApiFactory, pool: asyncpg.Pool, upload: Uploader
) -> None:
    ids = await assets(upload, 4)
    limited = await api_factory()
    limited.session.headers.update(await bearer(pool, jobs_in_flight=3))
    before = await table_counts(pool, STORED)

    over = await limited.post("/batches", json=listing(ids))

    assert over.status == 429
    assert error_of(await over.json()) == ("too_many_jobs_in_flight", None)
    assert int(over.headers["Retry-After"]) >= 1
    assert await table_counts(pool, STORED) == before
    await create(limited, listing(ids[:3]))
    full = await limited.post("/batches", json=listing(ids[3:]))
    assert full.status == 429
    assert await table_counts(pool, ("batches", "jobs")) == {"batches": 1, "jobs": 3}


async def test_a_refused_webhook_target_writes_nothing(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    ids = await assets(upload, 1)
    before = await table_counts(pool, STORED)

    response = await api.post("/batches", json=listing(ids, webhook_url="http://127.0.0.1:9/hook"))

    assert response.status == 422
    assert error_of(await response.json()) == ("invalid_field", "webhook_url")
    assert await table_counts(pool, STORED) == before


async def test_counts_follow_a_worker_and_the_list_pages_newest_first(
    api: Client, upload: Uploader, worker: WorkerFactory
) -> None:
    older = await create(api, listing(await assets(upload, 1)))
    batch = await create(api, listing(await assets(upload, 3)))
    await worker()

    done = await completed(api, batch["id"])

    assert done["counts"] == {"queued": 0, "processing": 0, "succeeded": 3, "failed": 0, "canceled": 0}
    assert done["completed_at"] == max(job["completed_at"] for job in done["jobs"])
    first = await (await api.get("/batches", params={"limit": "1"})).json()
    assert [summary["id"] for summary in first["batches"]] == [batch["id"]]
    assert "jobs" not in first["batches"][0]
    assert first["batches"][0] == {key: value for key, value in done.items() if key != "jobs"}
    second = await (await api.get("/batches", params={"limit": "1", "cursor": first["next_cursor"]})).json()
    assert ([summary["id"] for summary in second["batches"]], second["next_cursor"]) == ([older["id"]], None)


async def test_cancel_stops_the_queued_jobs_and_leaves_the_running_one(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    batch = await create(api, listing(await assets(upload, 3)))
    running = batch["jobs"][1]["id"]
    assert await jobstate.start(pool, uuid.UUID(running), worker_id="test-worker") is not None

    response = await api.post(f"/batches/{batch['id']}/cancel")

    assert response.status == 200
    canceled = (await response.json())["batch"]
    assert [job["status"] for job in canceled["jobs"]] == ["canceled", "processing", "canceled"]
    assert (canceled["status"], canceled["counts"]["canceled"]) == ("running", 2)
    history = await pool.fetchval("SELECT count(*) FROM job_events WHERE type = 'job.canceled'")
    assert history == 2


async def test_the_event_stream_runs_from_the_first_state_to_batch_completed(
    api: Client, upload: Uploader, worker: WorkerFactory
) -> None:
    batch = await create(api, listing(await assets(upload, 3)))
    ids = [job["id"] for job in batch["jobs"]]
    await asyncio.wait_for(api.app[keys.BATCH_WATCH].listening.wait(), timeout=30)
    response = await api.get(f"/batches/{batch['id']}/events")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    received: list[tuple[str, Any]] = []

    async def read_all() -> None:
        async for event in events(response):
            received.append(event)

    reading = asyncio.create_task(read_all())
    await poll(lambda: asyncio.sleep(0, len(received) >= 3), what="the stream's first events")
    await worker()
    await asyncio.wait_for(reading, timeout=60)  # the stream ends by itself

    assert [(name, data["id"], data["status"]) for name, data in received[:3]] == [
        ("job", job_id, "queued") for job_id in ids
    ]
    finals = {data["id"]: data["status"] for name, data in received if name == "job" and data["status"] != "queued"}
    assert finals == dict.fromkeys(ids, "succeeded")
    name, summary = received[-1]
    assert name == "batch.completed"
    assert (summary["id"], summary["status"], summary["counts"]["succeeded"]) == (batch["id"], "completed", 3)
    assert "jobs" not in summary
    assert [name for name, _ in received].count("batch.completed") == 1


async def test_a_change_reaches_the_stream_by_notification_and_shutdown_ends_it(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    batch = await create(api, listing(await assets(upload, 2)))
    watch = api.app[keys.BATCH_WATCH]
    await asyncio.wait_for(watch.listening.wait(), timeout=30)
    response = await api.get(f"/batches/{batch['id']}/events")
    stream = events(response)
    assert [(await anext(stream))[1]["status"] for _ in range(2)] == ["queued", "queued"]

    await jobstate.start(pool, uuid.UUID(batch["jobs"][0]["id"]), worker_id="test-worker")
    # Well before the 15 s keepalive: PostgreSQL's notification woke the stream, nothing polled.
    name, job = await asyncio.wait_for(anext(stream), timeout=5)

    assert (name, job["id"], job["status"]) == ("job", batch["jobs"][0]["id"], "processing")
    watch.release()  # what the app's shutdown does
    assert [event async for event in stream] == []


async def test_a_client_that_leaves_stops_its_stream(
    api: Client, upload: Uploader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_streams, "KEEPALIVE_S", 0.2)  # the first write after the client left notices
    batch = await create(api, listing(await assets(upload, 1)))
    watch = api.app[keys.BATCH_WATCH]
    response = await api.get(f"/batches/{batch['id']}/events")
    assert (await anext(events(response)))[0] == "job"
    assert watch.waiting == 1

    response.close()

    await poll(lambda: asyncio.sleep(0, watch.waiting == 0), what="the stream to let go of its batch")


async def test_outputs_zip_holds_every_succeeded_output(api: Client, upload: Uploader, worker: WorkerFactory) -> None:
    batch = await create(api, listing(await assets(upload, 3)))
    early = await api.get(f"/batches/{batch['id']}/outputs.zip")
    assert early.status == 409
    assert error_of(await early.json()) == ("conflict", "batch_id")
    await worker()
    done = await completed(api, batch["id"])

    response = await api.get(f"/batches/{batch['id']}/outputs.zip")

    assert response.status == 200
    assert response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    assert archive.namelist() == ["1-house.jpg", "2-house.jpg", "3-house.jpg"]
    for name, job in zip(archive.namelist(), done["jobs"], strict=True):
        output = await (await api.get(f"/jobs/{job['id']}/output")).read()
        assert archive.read(name) == output
        assert output.startswith(b"\xff\xd8\xff")


async def test_another_owner_finds_no_batch(api_factory: ApiFactory, api: Client, upload: Uploader) -> None:
    batch = await create(api, listing(await assets(upload, 1)))
    stranger = await api_factory()
    stranger.session.headers.update(await bearer(stranger.app[keys.POOL], owner="stranger"))

    answers = [
        await stranger.get(f"/batches/{batch['id']}"),
        await stranger.post(f"/batches/{batch['id']}/cancel"),
        await stranger.get(f"/batches/{batch['id']}/events"),
        await stranger.get(f"/batches/{batch['id']}/outputs.zip"),
    ]
    listed = await (await stranger.get("/batches")).json()

    assert [response.status for response in answers] == [404] * 4
    for response in answers:
        assert error_of(await response.json()) == ("not_found", "batch_id")
    assert listed == {"batches": [], "next_cursor": None}
    assert (await read_batch(api, batch["id"]))["jobs"][0]["status"] == "queued"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/batches/not-a-uuid"),
        ("POST", "/batches/not-a-uuid/cancel"),
        ("GET", "/batches/not-a-uuid/events"),
        ("GET", "/batches/not-a-uuid/outputs.zip"),
    ],
)
async def test_a_path_that_names_no_uuid_is_422(api: Client, method: str, path: str) -> None:
    response = await api.request(method, path)

    assert response.status == 422
    assert error_of(await response.json()) == ("invalid_field", "batch_id")


async def test_a_batch_holds_one_to_a_hundred_valid_jobs(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    ids = await assets(upload, 1)
    before = await table_counts(pool, STORED)
    refusals = {
        "jobs": [
            await api.post("/batches", json={"jobs": []}),
            await api.post("/batches", json=listing(ids * 101)),
            await api.post("/batches", json={}),
        ],
        "jobs.0.prompt": [await api.post("/batches", json={"jobs": [{"asset_id": ids[0]}]})],
        "jobs.0.asset_id": [await api.post("/batches", json={"jobs": [{"prompt": "Brighter"}]})],
        "webhook_events.0": [await api.post("/batches", json=listing(ids, webhook_events=["deleted"]))],
        "colour": [await api.post("/batches", json=listing(ids, colour="red"))],
    }

    for field, responses in refusals.items():
        for response in responses:
            assert response.status == 422, (field, await response.text())
            assert error_of(await response.json()) == ("invalid_field", field)
    assert await table_counts(pool, STORED) == before
    assert (await api.post("/batches", data=b"jobs", headers={"Content-Type": "text/plain"})).status == 400
    await create(api, listing(ids * 100))


async def test_retention_removes_a_batch_once_its_jobs_are_gone(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    emptied = await create(api, listing(await assets(upload, 1)))
    kept = await create(api, listing(await assets(upload, 1)))
    await pool.execute("UPDATE batches SET created_at = now() - interval '40 days'")
    await pool.execute("DELETE FROM jobs WHERE batch_id = $1", uuid.UUID(emptied["id"]))

    assert await batches.expire_empty(pool, days=30) == 1

    assert [record["id"] for record in await pool.fetch("SELECT id FROM batches")] == [uuid.UUID(kept["id"])]


async def test_the_batchs_prompt_tier_and_style_are_every_jobs_unless_it_names_its_own(
    api: Client, upload: Uploader, pool: asyncpg.Pool
) -> None:
    first, second = await assets(upload, 2)
    body = {
        "tier": "premium",
        "style": "dusk",
        "jobs": [{"asset_id": first}, {"asset_id": second, "tier": "free", "prompt": "Keep the lawn green"}],
    }
    batch = await create(api, body)
    assert [(job["tier"], job["style"], job["prompt"]) for job in batch["jobs"]] == [
        ("premium", "dusk", ""),
        ("free", "dusk", "Keep the lawn green"),
    ]

    before = await table_counts(pool, STORED)
    # No prompt and no style for the job, from the batch or its own: nothing to do, nothing stored.
    response = await api.post("/batches", json={"tier": "free", "jobs": [{"asset_id": first}]})
    assert response.status == 422
    assert (await response.json())["error"]["field"] == "jobs.0.prompt"
    assert await table_counts(pool, STORED) == before


async def test_a_batch_estimates_when_its_last_job_is_done(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    batch = await create(api, listing(await assets(upload, 3), tier="free"))
    assert batch["eta_seconds"] is None  # no job of its tier has finished lately: no estimate to give
    for ago_s in (30, 20, 10):
        await finished(pool, Tier.FREE, processing_s=4.0, ago_s=ago_s)

    estimated = await read_batch(api, batch["id"])
    last = estimated["jobs"][-1]
    job = (await (await api.get(f"/jobs/{last['id']}")).json())["job"]
    # The batch is done when its job furthest back in the queue is.
    assert estimated["eta_seconds"] == pytest.approx(job["eta_seconds"], abs=0.5)
    assert estimated["eta_seconds"] >= 4.0


def photos_form(photos: list[bytes], **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    for n, photo in enumerate(photos):
        form.add_field("file", photo, filename=f"room-{n}.jpg", content_type="image/jpeg")
    return form


async def test_a_listings_photos_sent_along_become_its_assets_and_jobs(
    api: Client, photo: bytes, pool: asyncpg.Pool
) -> None:
    other = encode(house(320, 240))
    response = await api.post(
        "/batches",
        data=photos_form([photo, other, photo], tier="premium", style="dusk", webhook_url=PUBLIC_HOOK),
        headers={"Idempotency-Key": "listing-7"},
    )
    assert response.status == 201, await response.text()
    batch = (await response.json())["batch"]
    assert [(job["tier"], job["style"]) for job in batch["jobs"]] == [("premium", "dusk")] * 3
    assert batch["webhook_url"] == PUBLIC_HOOK
    names = await pool.fetch(
        "SELECT assets.filename FROM jobs JOIN assets ON assets.id = jobs.asset_id WHERE batch_id = $1"
        " ORDER BY jobs.created_at, jobs.id",
        uuid.UUID(batch["id"]),
    )
    assert [row["filename"] for row in names] == ["room-0.jpg", "room-1.jpg", "room-2.jpg"]

    # The same photos and options again: the same batch, and no photo stored twice.
    before = await table_counts(pool, ("assets", *STORED))
    again = await api.post(
        "/batches",
        data=photos_form([photo, other, photo], tier="premium", style="dusk", webhook_url=PUBLIC_HOOK),
        headers={"Idempotency-Key": "listing-7"},
    )
    assert again.status == 200
    assert (await again.json())["batch"]["id"] == batch["id"]
    assert await table_counts(pool, ("assets", *STORED)) == before
    other_photos = await api.post(
        "/batches", data=photos_form([other], style="dusk"), headers={"Idempotency-Key": "listing-7"}
    )
    assert other_photos.status == 409


@pytest.mark.parametrize(
    ("photos", "fields", "status", "field"),
    [
        ("good,broken,good", {"style": "dusk"}, 415, "file.1"),
        ("good", {}, 422, "prompt"),  # no prompt and no style: nothing to ask for
        ("", {"style": "dusk"}, 422, "file"),
        ("good", {"style": "dusk", "tier": "gold"}, 422, "tier"),
        ("good", {"style": "dusk", "webhook_url": "http://10.0.0.1/hooks"}, 422, "webhook_url"),
    ],
)
async def test_a_bad_form_stores_nothing(
    api: Client, photo: bytes, pool: asyncpg.Pool, photos: str, fields: dict[str, str], status: int, field: str
) -> None:
    sent = [photo if kind == "good" else b"not a photo at all" for kind in photos.split(",") if kind]
    response = await api.post("/batches", data=photos_form(sent, **fields))
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["field"] == field
    assert await table_counts(pool, ("assets", *STORED)) == dict.fromkeys(("assets", *STORED), 0)


async def test_a_listing_over_the_forms_byte_cap_stores_nothing(
    api_factory: ApiFactory, photo: bytes, pool: asyncpg.Pool
) -> None:
    api = await api_factory(max_batch_upload_bytes=2 * len(photo) + 1)
    response = await api.post("/batches", data=photos_form([photo] * 3, style="dusk"))
    assert response.status == 413, await response.text()
    assert await table_counts(pool, ("assets", *STORED)) == dict.fromkeys(("assets", *STORED), 0)
