"""Three machines: api, worker and monitor share no disk, only PostgreSQL, RabbitMQ and one bucket.

Each service runs as its own process from an empty working directory of its own, with a temporary
directory of its own and `STORAGE=s3`; no UPLOADS_DIR or OUTPUTS_DIR is set. A photo goes in through
each of the api's three doors, each job's output comes back through a presigned URL on the store, and
at the end every working and temporary directory is still empty: nothing was kept on a local disk.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from PIL import Image

from shared.storage import open_stores
from tests.conftest import bearer
from tests.harness.poll import poll
from tests.s3 import settings_on
from tests.system.conftest import submit_job
from tests.system.processes import Service, free_port, start, wait_healthy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SERVICES = ("api", "worker", "monitor")
ADMIN_PASSWORD = "three-machines-admin"
JOB_DEADLINE_S = 120.0  # a loaded 2-core machine, a cold engine pool
WORKER_ID = "three-machines-worker"
# The photo fixture is 480 x 320: each tier's long edge, the other side in proportion.
EXPECTED_SIZE = {"premium": (1536, 1024), "free": (1024, 683)}


@dataclass
class Machine:
    service: Service
    home: Path  # its working directory
    tmp: Path  # its TMPDIR


@dataclass
class Stack:
    machines: dict[str, Machine]
    s3_env: dict[str, str]
    key: dict[str, str]  # the Authorization header of an API key

    @property
    def api(self) -> str:
        return self.machines["api"].service.url

    @property
    def monitor(self) -> str:
        return self.machines["monitor"].service.url


def _launch(name: str, env: dict[str, str], root: Path, log_dir: Path) -> Machine:
    home, tmp = root / f"{name}-home", root / f"{name}-tmp"
    home.mkdir()
    tmp.mkdir()
    port = None if name == "worker" else free_port()
    own = {"TMPDIR": str(tmp), **({"WORKER_ID": WORKER_ID} if name == "worker" else {})}
    service = start(name, {**env, **own}, log_dir, port=port, cwd=home)
    return Machine(service, home, tmp)


@pytest.fixture
async def stack(
    service_env: dict[str, str], s3_env: dict[str, str], pool: asyncpg.Pool, tmp_path: Path, log_dir: Path
) -> AsyncIterator[Stack]:
    # The test's own database and broker namespace; storage only in the bucket.
    shared = {name: value for name, value in service_env.items() if name not in {"UPLOADS_DIR", "OUTPUTS_DIR"}}
    env = {**shared, **s3_env, "ADMIN_PASSWORD": ADMIN_PASSWORD, "HEARTBEAT_INTERVAL": "1", "CHECK_INTERVAL": "1"}
    machines = {name: _launch(name, env, tmp_path, log_dir) for name in SERVICES}
    try:
        await wait_healthy(machines["api"].service, deadline_s=90)
        await wait_healthy(machines["monitor"].service, deadline_s=90)
        yield Stack(machines, s3_env, await bearer(pool))
    finally:
        for machine in machines.values():
            await asyncio.to_thread(machine.service.stop, 30)


async def _json(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def _photo_form(photo: bytes, field: str = "file", **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(fields)
    form.add_field(field, photo, filename="listing.jpg", content_type="image/jpeg")
    return form


async def _job_on_asset(api: aiohttp.ClientSession, asset_id: str, tier: str) -> str:
    body = {"asset_id": asset_id, "prompt": "Test enhancement", "tier": tier, "style": "bright_airy"}
    async with api.post("/jobs", json=body) as response:
        return str((await _json(response, 202))["job"]["id"])


async def _through_multipart(api: aiohttp.ClientSession, photo: bytes) -> str:
    async with api.post("/assets", data=_photo_form(photo)) as response:
        asset = (await _json(response, 201))["asset"]
    return await _job_on_asset(api, asset["id"], "premium")


async def _through_direct_upload(api: aiohttp.ClientSession, store: aiohttp.ClientSession, photo: bytes) -> str:
    async with api.post("/assets/uploads") as response:
        upload = (await _json(response, 201))["upload"]
    form = _photo_form(photo, upload["file_field"], **upload["fields"])
    async with store.post(upload["url"], data=form) as sent:  # to the store itself, not through the api
        assert sent.status in {200, 204}, await sent.text()
    async with api.post(upload["complete_url"]) as response:
        asset = (await _json(response, 201))["asset"]
    assert asset["id"] == upload["asset_id"]
    return await _job_on_asset(api, asset["id"], "premium")


async def _fetch_output(api: aiohttp.ClientSession, store: aiohttp.ClientSession, job_id: str, endpoint: str) -> bytes:
    """The output through the api's redirect to a presigned URL on the store; the api never sends the bytes."""
    async with api.get(f"/jobs/{job_id}/output", allow_redirects=False) as response:
        assert response.status == 307, await response.text()
        location = response.headers["Location"]
    assert location.startswith(endpoint) and "X-Amz-Signature=" in location, location
    async with store.get(location) as response:
        assert response.status == 200, await response.text()
        data = await response.read()
        assert int(response.headers["Content-Length"]) == len(data)
    return data


async def _finished(api: aiohttp.ClientSession, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal job
        async with api.get(f"/jobs/{job_id}") as response:
            job = (await _json(response, 200))["job"]
        return job["status"] in {"succeeded", "failed", "canceled"}

    await poll(finished, within=JOB_DEADLINE_S, every=0.2, what=lambda: f"job {job_id} to finish; last: {job}")
    return job


def _complete_jpeg(data: bytes) -> tuple[int, int]:
    """Decodes every byte (Pillow raises on a truncated file) and ends with the JPEG end-of-image marker."""
    assert data.endswith(b"\xff\xd9"), "the JPEG has no end-of-image marker"
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        image.load()
        return image.size


async def _monitor_healthy_with_a_worker(stack: Stack, deadline_s: float = 60.0) -> dict[str, Any]:
    """The monitor's public health, once it is healthy and counts the worker (heartbeats, consumers)."""
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            nonlocal body
            async with session.get(f"{stack.monitor}/health") as response:
                body = await response.json()
            return response.status == 200 and body["status"] == "healthy" and body["workers"]["estimated_active"] >= 1

        await poll(healthy, within=deadline_s, every=0.5, what=lambda: f"the monitor healthy with a worker: {body}")
    return body


async def _monitor_saw(stack: Stack, job_ids: list[str], deadline_s: float = 60.0) -> dict[str, Any]:
    """The monitor's admin view, once it counts the jobs as succeeded, and the worker's heartbeat says it did them."""
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:

        async def counted() -> bool:
            nonlocal body
            async with session.get(f"{stack.monitor}/admin/health") as response:
                body = await _json(response, 200)
            succeeded = body["jobs"]["succeeded"], body["windows"]["1h"]["succeeded"]
            workers = [(worker["worker_id"], worker["processed"]) for worker in body["workers"]["list"]]
            return succeeded == (len(job_ids), len(job_ids)) and workers == [(WORKER_ID, len(job_ids))]

        def what() -> str:
            return f"the monitor to count {len(job_ids)} jobs succeeded by {WORKER_ID}: {body}"

        await poll(counted, within=deadline_s, every=0.5, what=what)
    return body


async def _bucket_keys(s3_env: dict[str, str]) -> tuple[set[str], set[str]]:
    settings = settings_on(s3_env)
    async with open_stores(settings) as stores:
        return set(await stores.uploads.keys_older_than(-60)), set(await stores.outputs.keys_older_than(-60))


def _contents(path: Path) -> list[str]:
    return sorted(str(entry.relative_to(path)) for entry in path.rglob("*"))


async def test_three_machines_share_nothing_but_the_bucket(stack: Stack, photo: bytes) -> None:
    endpoint, timeout = stack.s3_env["S3_ENDPOINT_URL"], aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(stack.api, headers=stack.key, timeout=timeout) as api,
        aiohttp.ClientSession(timeout=timeout) as store,  # a client's requests to the bucket carry no API key
    ):
        jobs = {
            await _through_multipart(api, photo): "premium",
            (await submit_job(stack.api, photo, stack.key, tier="free"))["id"]: "free",  # the photo inline
            await _through_direct_upload(api, store, photo): "premium",
        }
        for job_id, tier in jobs.items():
            job = await _finished(api, job_id)
            assert job["status"] == "succeeded", job
            output = await _fetch_output(api, store, job_id, endpoint)
            assert _complete_jpeg(output) == EXPECTED_SIZE[tier], job_id

    health = await _monitor_healthy_with_a_worker(stack)
    assert health["services"] == {"database": "healthy", "broker": "healthy", "api": "healthy"}
    await _monitor_saw(stack, list(jobs))

    uploads, outputs = await _bucket_keys(stack.s3_env)
    assert len(uploads) == 3  # the asset, the inline photo, the direct upload
    assert outputs == {f"{job_id}.jpg" for job_id in jobs}

    for name, machine in stack.machines.items():
        assert await asyncio.to_thread(machine.service.stop, 30) == 0, machine.service.log()
        assert _contents(machine.home) == [], f"{name} wrote to its working directory"
        assert _contents(machine.tmp) == [], f"{name} left files in its temporary directory"
