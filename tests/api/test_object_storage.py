"""The api on an S3-compatible store: uploads stream into the bucket, direct uploads, outputs through redirects."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import FormData
from PIL import Image

from services.api.direct import incoming_key
from services.api.settings import ApiSettings
from shared.settings import StorageSettings
from shared.storage import Stores, open_stores
from shared.storage.s3 import S3Store
from tests.conftest import TEST_OWNER, Client
from tests.harness.api import ApiFactory, JobWaiter, Submitter, Uploader, table_counts
from tests.harness.worker import WorkerFactory
from tests.s3 import settings_on

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture
def s3(s3_env: dict[str, str]) -> dict[str, Any]:
    """Settings overrides that put a service on this test's bucket; parts of 5 MiB."""
    raw = {name.lower(): value for name, value in s3_env.items()} | {"s3_multipart_bytes": 5 * MIB}
    validated = settings_on(raw)  # overrides reach the services unvalidated (model_copy)
    return {name: getattr(validated, name) for name in raw}


@pytest.fixture
async def bucket(s3: dict[str, Any]) -> AsyncIterator[Stores]:
    """The test's own view of the bucket the api writes to."""
    async with open_stores(settings_on(s3)) as stores:
        yield stores


@pytest.fixture
async def api(api_factory: ApiFactory, s3: dict[str, Any]) -> Client:
    return await api_factory(**s3)


def noise_jpeg(width: int, height: int) -> bytes:
    """A photo too noisy to compress: big in bytes for its pixels."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=100)
    return buffer.getvalue()


async def objects(stores: Stores) -> tuple[list[str], list[str]]:
    return sorted(await stores.uploads.keys_older_than(-60)), sorted(await stores.outputs.keys_older_than(-60))


async def post_to_store(upload: dict[str, Any], data: bytes) -> None:
    form = FormData(upload["fields"])
    form.add_field(upload["file_field"], data, filename="photo.jpg", content_type="image/jpeg")
    async with aiohttp.ClientSession() as session, session.post(upload["url"], data=form) as response:
        assert response.status in {200, 204}, await response.text()


async def offer(api: Client) -> dict[str, Any]:
    response = await api.post("/assets/uploads")
    assert response.status == 201, await response.text()
    upload: dict[str, Any] = (await response.json())["upload"]
    return upload


async def test_an_upload_lands_in_the_bucket_under_its_generated_key(upload: Uploader, bucket: Stores) -> None:
    asset = await upload()

    uploads, outputs = await objects(bucket)
    assert uploads == [f"{asset['id']}.jpg"] and outputs == []


async def test_a_large_upload_goes_to_the_bucket_in_parts(api: Client, bucket: Stores, pool: asyncpg.Pool) -> None:
    photo = noise_jpeg(2000, 1500)
    assert len(photo) > 5 * MIB
    form = FormData()
    form.add_field("file", io.BytesIO(photo), filename="big.jpg", content_type="image/jpeg")

    response = await api.post("/assets", data=form)

    assert response.status == 201, await response.text()
    asset = (await response.json())["asset"]
    key = await pool.fetchval("SELECT storage_key FROM assets WHERE id = $1", asset["id"])
    stored = await bucket.uploads.stat(key)
    assert stored is not None and stored.size == len(photo)
    assert stored.version.strip('"').endswith("-2")  # the ETag of a two-part upload
    assert await bucket.uploads.get(key) == photo


async def test_a_direct_upload_becomes_an_asset_once_completed(
    api: Client, bucket: Stores, photo: bytes, pool: asyncpg.Pool
) -> None:
    upload = await offer(api)
    await post_to_store(upload, photo)
    assert await table_counts(pool, ("assets",)) == {"assets": 0}  # not an asset before completion

    first = await api.post(upload["complete_url"])
    again = await api.post(upload["complete_url"])

    assert first.status == 201, await first.text()
    assert again.status == 200
    asset = (await first.json())["asset"]
    assert (await again.json())["asset"] == asset
    assert asset["id"] == upload["asset_id"] and (asset["width"], asset["height"]) == (400, 300)
    assert await objects(bucket) == ([f"{asset['id']}.jpg"], [])  # the incoming object is gone


async def test_a_direct_upload_can_be_enhanced(
    api: Client,
    bucket: Stores,
    photo: bytes,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker: WorkerFactory,
    s3: dict[str, Any],
) -> None:
    await worker(**s3)
    upload = await offer(api)
    await post_to_store(upload, photo)
    assert (await api.post(upload["complete_url"])).status == 201

    job = await wait_for_job((await submit(upload["asset_id"]))["id"])

    assert job["status"] == "succeeded", job
    response = await api.get(job["output_url"], allow_redirects=False)
    assert response.status == 307
    assert response.headers["Cache-Control"] == "no-store"
    async with aiohttp.ClientSession() as session, session.get(response.headers["Location"]) as stored:
        assert stored.status == 200 and stored.headers["Content-Type"] == "image/jpeg"
        output = await stored.read()
    assert Image.open(io.BytesIO(output)).size == (1024, 768)
    assert (await objects(bucket))[1] == [f"{job['id']}.jpg"]


async def test_completing_what_never_arrived_is_404(api: Client) -> None:
    upload = await offer(api)

    response = await api.post(upload["complete_url"])

    assert response.status == 404
    assert (await response.json())["error"]["field"] == "asset_id"


async def test_completing_a_malformed_id_is_422(api: Client) -> None:
    response = await api.post("/assets/not-a-uuid/complete")

    assert response.status == 422
    assert (await response.json())["error"]["field"] == "asset_id"


async def test_a_direct_upload_that_is_no_image_is_refused_and_removed(
    api: Client, bucket: Stores, pool: asyncpg.Pool
) -> None:
    upload = await offer(api)
    await post_to_store(upload, b"%PDF-1.7 not a photo at all")

    response = await api.post(upload["complete_url"])

    assert response.status == 415
    assert (await response.json())["error"]["code"] == "unsupported_format"
    assert await objects(bucket) == ([], [])
    assert await table_counts(pool, ("assets",)) == {"assets": 0}


async def test_a_direct_upload_over_the_cap_is_refused_and_removed(
    api_factory: ApiFactory, s3: dict[str, Any], bucket: Stores, photo: bytes, pool: asyncpg.Pool
) -> None:
    api = await api_factory(**s3, max_upload_bytes=4096)
    upload = await offer(api)
    assert upload["max_bytes"] == 4096
    await post_to_store(upload, photo)  # this S3 server does not enforce the form's size range; ours does

    response = await api.post(upload["complete_url"])

    assert response.status == 413
    assert await objects(bucket) == ([], [])
    assert await table_counts(pool, ("assets",)) == {"assets": 0}


async def test_bytes_swapped_in_after_the_check_never_become_the_asset(
    api: Client, bucket: Stores, photo: bytes
) -> None:
    upload = await offer(api)
    await post_to_store(upload, photo)
    uploads = bucket.uploads
    assert isinstance(uploads, S3Store)
    incoming = incoming_key(uuid.UUID(upload["asset_id"]), TEST_OWNER)
    checked = await uploads.stat(incoming)
    assert checked is not None
    await uploads.put(incoming, b"swapped")

    with pytest.raises(Exception, match="changed while it was being read"):
        await uploads.copy(incoming, f"{upload['asset_id']}.jpg", if_version=checked.version)
    assert await uploads.stat(f"{upload['asset_id']}.jpg") is None


async def test_on_local_storage_direct_uploads_are_refused_with_the_way_that_works(api_factory: ApiFactory) -> None:
    api = await api_factory()

    response = await api.post("/assets/uploads")

    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "direct_upload_unavailable" and "POST /assets" in error["message"]


async def test_the_api_answers_503_when_the_store_does_not(
    api_factory: ApiFactory, photo: bytes, pool: asyncpg.Pool, s3: dict[str, Any]
) -> None:
    nowhere = StorageSettings(s3_endpoint_url="http://127.0.0.1:9").s3_endpoint_url
    api = await api_factory(**(s3 | {"s3_endpoint_url": nowhere}))
    form = FormData()
    form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")

    response = await api.post("/assets", data=form)

    assert response.status == 503
    assert (await response.json())["error"]["code"] == "dependency_unavailable"
    assert await table_counts(pool, ("assets",)) == {"assets": 0}


def test_settings_accept_the_bucket(s3: dict[str, Any]) -> None:
    assert ApiSettings(**s3).storage == "s3"


async def test_a_worker_that_cannot_reach_the_store_retries_then_fails_naming_it(
    upload: Uploader, submit: Submitter, wait_for_job: JobWaiter, worker: WorkerFactory, s3: dict[str, Any]
) -> None:
    nowhere = StorageSettings(s3_endpoint_url="http://127.0.0.1:9").s3_endpoint_url
    await worker(**(s3 | {"s3_endpoint_url": nowhere}), max_attempts=2)
    asset = await upload()

    job = await wait_for_job((await submit(asset["id"]))["id"], within=60)

    assert (job["status"], job["attempts"], job["error"]["code"]) == ("failed", 2, "storage_unavailable")
