"""The Python client against a real api and worker: typed answers, idempotent submission, errors, both flavours."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from luster_client import ApiError, AsyncLuster, Luster, TransportError
from luster_client.retry import RetryPolicy
from tests.client.conftest import Stack, StoreDoor
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
