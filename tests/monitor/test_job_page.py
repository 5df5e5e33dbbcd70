"""The monitor's job page: one job's timeline, attempts and trace link, and the operator's cancel and retry."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest

from services.monitor import keys
from shared import jobstate
from tests.conftest import Client
from tests.harness.api import JobWaiter, Submitter, Uploader
from tests.harness.broker import TapFactory
from tests.harness.monitor import ADMIN, JobRunner, MonitorFactory, admin_json, admin_post_headers
from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration

JAEGER = "http://jaeger.test:16686/"


async def _failed(pool: asyncpg.Pool, job_id: str) -> None:
    """Fail a queued job the way a worker's last attempt does."""
    started = await jobstate.start(pool, uuid.UUID(job_id), worker_id="test-worker")
    assert started is not None
    failed = await jobstate.fail(pool, started.id, code="engine_error", message="the engine gave up")
    assert failed is not None


async def test_a_finished_job_shows_its_timeline_attempts_and_trace(
    monitor_factory: MonitorFactory, worker: WorkerFactory, run_job: JobRunner
) -> None:
    monitor = await monitor_factory(trace_ui_url=JAEGER)
    await worker()
    done = await run_job()
    assert done["status"] == "succeeded"

    page = await admin_json(monitor, f"/admin/jobs/{done['id']}")
    job = page["job"]
    assert (job["id"], job["status"], job["owner"]) == (done["id"], "succeeded", "tester")
    assert "request_fingerprint" not in job
    assert job["trace_id"] == done["trace_id"]
    assert job["trace_url"] == (f"{JAEGER}trace/{done['trace_id']}" if done["trace_id"] else None)
    timeline = page["timeline"]
    assert [event["type"] for event in timeline] == ["job.queued", "job.started", "job.succeeded"]
    assert [(event["from_status"], event["to_status"]) for event in timeline] == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "succeeded"),
    ]
    assert timeline[0]["details"] == {"tier": "free"}
    (attempt,) = page["timings"]["attempts"]
    assert attempt["number"] == 1 and attempt["outcome"] == "succeeded"
    assert attempt["worker_id"] == timeline[1]["details"]["worker_id"]
    assert page["timings"]["total_s"] is not None
    assert page["actions"] == {"cancel": False, "retry": False}


async def test_bad_and_unknown_ids(monitor: Client) -> None:
    bad = await monitor.get("/admin/jobs/not-a-uuid", headers=ADMIN)
    assert bad.status == 422
    assert (await bad.json())["error"]["field"] == "job_id"
    unknown = await monitor.get(f"/admin/jobs/{uuid.uuid4()}", headers=ADMIN)
    assert unknown.status == 404
    assert (await unknown.json())["error"]["field"] == "job_id"
    post = await admin_post_headers(monitor)
    for action in ("cancel", "retry"):
        assert (await monitor.post(f"/admin/jobs/{uuid.uuid4()}/{action}", headers=post)).status == 404
        assert (await monitor.post(f"/admin/jobs/nope/{action}", headers=post)).status == 422


async def test_an_admin_cancels_a_queued_job_as_its_owner_would(
    monitor: Client, upload: Uploader, submit: Submitter, wait_for_job: JobWaiter, tap: TapFactory
) -> None:
    job = await submit((await upload())["id"])  # no worker: it stays queued
    canceled_events = await tap("job.canceled")
    path = f"/admin/jobs/{job['id']}/cancel"
    assert (await monitor.post(path)).status == 401
    refused = await monitor.post(path, headers=ADMIN)  # no CSRF token
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf_failed"
    assert (await admin_json(monitor, f"/admin/jobs/{job['id']}"))["actions"]["cancel"] is True

    headers = await admin_post_headers(monitor)
    response = await monitor.post(path, headers=headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["job"]["status"] == "canceled"
    assert (await wait_for_job(job["id"]))["status"] == "canceled"  # what the owner sees
    (event,) = await canceled_events.events()
    assert str(event.job_id) == job["id"]
    page = await admin_json(monitor, f"/admin/jobs/{job['id']}")
    assert [event["type"] for event in page["timeline"]] == ["job.queued", "job.canceled"]

    again = await monitor.post(path, headers=headers)
    assert again.status == 409
    assert "only a queued job" in (await again.json())["error"]["message"]


async def test_an_admin_retries_a_failed_job_as_a_new_one(
    pool: asyncpg.Pool, monitor: Client, upload: Uploader, submit: Submitter, tap: TapFactory
) -> None:
    asset = await upload()
    job = await submit(asset["id"], prompt="Brighter sky", style="dusk")
    queued_events = await tap("job.queued.*")
    await _failed(pool, job["id"])
    failed = await admin_json(monitor, f"/admin/jobs/{job['id']}")
    assert failed["actions"] == {"cancel": False, "retry": True}
    assert [attempt["outcome"] for attempt in failed["timings"]["attempts"]] == ["failed"]

    path = f"/admin/jobs/{job['id']}/retry"
    assert (await monitor.post(path)).status == 401
    assert (await monitor.post(path, headers=ADMIN)).status == 403
    headers = await admin_post_headers(monitor)
    response = await monitor.post(path, headers=headers)
    assert response.status == 201, await response.text()
    body = await response.json()
    new = body["job"]
    assert body["retry_of"] == job["id"] and new["id"] != job["id"]
    assert response.headers["Location"] == f"/admin/jobs/{new['id']}"
    same = ("asset_id", "prompt", "tier", "style")
    assert {k: new[k] for k in same} == {k: job[k] for k in same}
    assert (job["asset_id"], job["prompt"], job["style"]) == (asset["id"], "Brighter sky", "dusk")
    assert (new["status"], new["owner"], new["attempts"]) == ("queued", "tester", 0)

    page = await admin_json(monitor, f"/admin/jobs/{new['id']}")
    assert page["timeline"][0]["details"] == {"tier": job["tier"], "retry_of": job["id"]}
    await monitor.app[keys.PUBLISHER].settle()  # its announcement leaves after the answer
    (event,) = await queued_events.events()  # announced like any submission
    assert str(event.job_id) == new["id"]
    # The failed job stays failed: histories only move forward.
    assert (await admin_json(monitor, f"/admin/jobs/{job['id']}"))["job"]["status"] == "failed"
    again = await monitor.post(path, headers=headers)  # a double click makes no second job
    assert again.status == 200
    assert (await again.json())["job"]["id"] == new["id"]
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE asset_id = $1", uuid.UUID(asset["id"])) == 2
    queued = await monitor.post(f"/admin/jobs/{new['id']}/retry", headers=headers)
    assert queued.status == 409
    assert "only a failed job" in (await queued.json())["error"]["message"]


async def test_only_a_failed_job_is_retried(
    pool: asyncpg.Pool, monitor: Client, upload: Uploader, submit: Submitter
) -> None:
    job = await submit((await upload())["id"])
    job_id = uuid.UUID(job["id"])
    assert await jobstate.start(pool, job_id, worker_id="test-worker") is not None
    done = await jobstate.succeed(
        pool, job_id, output_key="k", content_type="image/jpeg", cost=Decimal(0), engine="local"
    )
    assert done is not None
    response = await monitor.post(f"/admin/jobs/{job_id}/retry", headers=await admin_post_headers(monitor))
    assert response.status == 409
    assert (await response.json())["error"]["field"] == "job_id"
    assert (await admin_json(monitor, "/admin/jobs"))["jobs"][0]["id"] == job["id"]  # no new job
