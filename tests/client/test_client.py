"""The Python client against a real api and worker: typed answers, idempotent submission, errors, both flavours."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from PIL import Image

from luster_client import ApiError, AsyncLuster, Batch, Luster, TransportError
from luster_client.retry import RetryPolicy
from tests.client.conftest import Stack, StoreDoor, start_worker
from tests.harness.poll import poll
from tests.system.processes import free_port

pytestmark = pytest.mark.integration
QUICK = RetryPolicy(attempts=3, base_delay_s=0.01)


async def test_an_uploaded_photo_submitted_twice_with_one_key_is_one_job_and_its_output_downloads(
    stack: Stack, photos: list[Path], tmp_path: Path
) -> None:
    async with AsyncLuster(stack.url, stack.key) as client:
        asset = await client.upload(photos[0])
        first = await client.submit(asset.id, prompt="Brighter", tier="premium", style="dusk", idempotency_key="k-1")
        again = await client.submit(asset.id, prompt="Brighter", tier="premium", style="dusk", idempotency_key="k-1")
        done = await client.wait(first.id, within=60)
        written = await client.download(first.id, tmp_path / "out.jpg")
        page = await client.list_jobs(limit=5)

    assert (asset.width, asset.content_type) == (328, "image/jpeg")
    assert again.id == first.id
    assert (first.status, first.tier, first.style, first.asset_id) == ("queued", "premium", "dusk", asset.id)
    assert done.status == "succeeded"
    assert done.output_url == f"/jobs/{first.id}/output"
    with Image.open(written) as image:
        assert image.format == "JPEG"
    assert [job.id for job in page.jobs] == [first.id]


async def test_a_photo_sent_inline_with_a_wait_comes_back_finished(stack: Stack, photos: list[Path]) -> None:
    async with AsyncLuster(stack.url, stack.key) as client:
        job = await client.submit(photo=photos[1].read_bytes(), style="bright_airy", idempotency_key="inline", wait=30)
        read = await client.get_job(job.id, wait=5)

    assert job.status == "succeeded"
    assert read == job.model_copy(update={"timings": read.timings, "queue_position": None, "eta_seconds": None})


async def test_api_errors_carry_status_code_message_and_field(stack: Stack, photos: list[Path]) -> None:
    async with AsyncLuster(stack.url, "lus_not-a-real-key") as stranger:
        with pytest.raises(ApiError) as unauthenticated:
            await stranger.list_jobs()
    async with AsyncLuster(stack.url, stack.key) as client:
        asset = await client.upload(photos[0])
        await client.submit(asset.id, style="dusk", idempotency_key="reused")
        with pytest.raises(ApiError) as conflict:
            await client.submit(asset.id, style="bright_airy", idempotency_key="reused")

    assert (unauthenticated.value.status, unauthenticated.value.code) == (401, "unauthenticated")
    assert str(unauthenticated.value).startswith("401 unauthenticated: ")
    assert (conflict.value.status, conflict.value.code, conflict.value.field) == (409, "conflict", "Idempotency-Key")


def test_the_sync_client_makes_the_same_calls(stack: Stack, photos: list[Path], tmp_path: Path) -> None:
    with Luster(stack.url, stack.key) as client:
        asset = client.upload(photos[2])
        job = client.submit(asset.id, style="lawn_cleanup", idempotency_key="sync")
        done = client.wait(job.id, within=60)
        output = client.output(job.id)
        listed = client.list_jobs()

    assert done.status == "succeeded"
    assert output.content_type == "image/jpeg"
    assert Image.open(io.BytesIO(output.data)).format == "JPEG"
    assert [found.id for found in listed.jobs] == [job.id]


async def test_an_output_in_the_object_store_downloads_through_the_redirect_without_the_api_key(
    s3_stack: Stack, store_door: StoreDoor, photos: list[Path]
) -> None:
    async with AsyncLuster(s3_stack.url, s3_stack.key) as client:
        job = await client.submit(photo=photos[0], style="dusk", idempotency_key="s3", wait=30)
        output = await client.output(job.id)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {s3_stack.key}"}) as session,
        session.get(f"{s3_stack.url}/jobs/{job.id}/output", allow_redirects=False) as response,
    ):
        redirected = response.status

    assert job.status == "succeeded"
    assert redirected == 307
    assert len(store_door.seen) == 1
    assert "Authorization" not in store_door.seen[0]
    assert Image.open(io.BytesIO(output.data)).format == "JPEG"


async def test_an_upload_goes_straight_to_the_object_store_without_the_api_key(
    s3_stack: Stack, store_door: StoreDoor, photos: list[Path]
) -> None:
    async with AsyncLuster(s3_stack.url, s3_stack.key) as client:
        asset = await client.upload(photos[0])
        again = await client.upload(photos[0].read_bytes(), filename="again.jpg")
        found = await client.list_assets(limit=5)

    assert store_door.methods == ["POST", "POST"]
    assert not any("Authorization" in headers for headers in store_door.seen)
    assert (asset.width, asset.content_type) == (328, "image/jpeg")
    assert again.sha256 == asset.sha256 != ""
    assert again.id != asset.id
    assert [listed.id for listed in found.assets] == [again.id, asset.id]


async def test_on_local_storage_an_upload_falls_back_to_the_api(
    api_only: Stack, photos: list[Path], pool: asyncpg.Pool
) -> None:
    async with AsyncLuster(api_only.url, api_only.key) as client:
        with pytest.raises(ApiError) as refused:
            await client._call("POST", "/assets/uploads", dict)  # what upload() asks first
        uploaded = [await client.upload(photo) for photo in photos]

    assert (refused.value.status, refused.value.code) == (409, "direct_upload_unavailable")
    assert {str(asset.id) for asset in uploaded} == {
        str(row["id"]) for row in await pool.fetch("SELECT id FROM assets")
    }


async def test_a_batch_is_created_once_per_key_read_listed_canceled_and_zipped(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, photos: list[Path], tmp_path: Path
) -> None:
    async with AsyncLuster(api_only.url, api_only.key) as client:
        assets = [await client.upload(photo) for photo in photos]
        first = await client.create_batch([assets[0].id, assets[1].id], style="dusk", idempotency_key="listing-1")
        again = await client.create_batch([assets[0].id, assets[1].id], style="dusk", idempotency_key="listing-1")
        mixed = await client.create_batch(
            [{"asset_id": assets[2].id, "tier": "premium", "prompt": "Warmer"}], style="bright_airy"
        )
        canceled = await client.cancel_batch(mixed.id)  # no worker yet: still queued
        start_worker(api_only, service_env, log_dir)
        done = await poll(lambda: _finished(client, first.id), within=90, every=0.5, what=lambda: "the batch")
        zipped = await client.download_batch_zip(first.id, tmp_path / "listing.zip")
        page = await client.list_batches(limit=1)
        rest = await client.list_batches(limit=1, cursor=page.next_cursor)

    assert again.id == first.id
    assert (first.status, first.total, first.counts.queued) == ("running", 2, 2)
    assert [job.asset_id for job in first.jobs] == [assets[0].id, assets[1].id]
    assert {job.style for job in first.jobs} == {"dusk"}
    assert (mixed.jobs[0].tier, mixed.jobs[0].style, mixed.jobs[0].prompt) == ("premium", "bright_airy", "Warmer")
    assert (canceled.status, canceled.counts.canceled) == ("completed", 1)
    assert done is not None
    assert (done.counts.succeeded, done.completed_at is not None, done.eta_seconds) == (2, True, None)
    with zipfile.ZipFile(zipped) as archive:
        assert sorted(name.split("-", 1)[1] for name in archive.namelist()) == sorted(p.name for p in photos[:2])
    assert zipped == tmp_path / "listing.zip"
    assert [summary.id for summary in page.batches + rest.batches] == [mixed.id, first.id]


async def _finished(client: AsyncLuster, batch_id: object) -> Batch | None:
    batch = await client.get_batch(batch_id)
    return batch if batch.finished else None


def test_the_sync_client_makes_the_batch_calls(stack: Stack, photos: list[Path], tmp_path: Path) -> None:
    with Luster(stack.url, stack.key) as client:
        asset = client.upload(photos[0])
        batch = client.create_batch([asset.id], style="lawn_cleanup", idempotency_key="sync-batch")
        client.wait(batch.jobs[0].id, within=120)
        batch = client.get_batch(batch.id)
        zipped = client.download_batch_zip(batch.id, tmp_path / "one.zip")
        listed = client.list_batches()
        canceled = client.cancel_batch(batch.id)  # nothing left to cancel: the batch as it is

    assert batch.counts.succeeded == 1
    with zipfile.ZipFile(zipped) as archive:
        assert archive.namelist() == [f"1-{photos[0].stem}.jpg"]
    assert [summary.id for summary in listed.batches] == [batch.id]
    assert canceled.counts == batch.counts


async def test_a_read_is_retried_while_the_api_is_unreachable_then_given_up() -> None:
    async with AsyncLuster(f"http://127.0.0.1:{free_port()}", "lus_x", retry=QUICK) as client:
        with pytest.raises(TransportError, match=r"^GET http://127\.0\.0\.1:"):
            await client.list_jobs()


def test_a_429_is_retried_after_its_retry_after_and_a_503_only_when_the_call_is_idempotent() -> None:
    policy = RetryPolicy(attempts=3, base_delay_s=0.5, max_delay_s=60)

    assert policy.delay_for(429, "7", 1, idempotent=False) == 7.0
    assert policy.delay_for(429, "86400", 1, idempotent=True) is None  # a daily allowance: not worth waiting for
    assert policy.delay_for(503, None, 1, idempotent=True) == 0.5
    assert policy.delay_for(503, None, 2, idempotent=True) == 1.0
    assert policy.delay_for(503, None, 1, idempotent=False) is None
    assert policy.delay_for(503, None, 3, idempotent=True) is None  # out of attempts
    assert policy.delay_for(422, None, 1, idempotent=True) is None
