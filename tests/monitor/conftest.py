"""Fixtures for the monitor tests: the real monitor, API and worker apps, a broker connection, and helpers."""

from __future__ import annotations

import asyncio
import io
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp import FormData
from PIL import Image
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from services.monitor.app import create_app as create_monitor
from services.monitor.settings import MonitorSettings
from services.worker.runner import run
from services.worker.settings import WorkerSettings
from shared import apikeys
from shared.domain import Tier
from shared.topology import Topology
from tests.conftest import AppFactory, SettingsFactory
from tests.conftest import Client as Client  # the tests beside this conftest import it from here

PASSWORD = "correct horse battery staple"
ADMIN = {"Authorization": aiohttp.encode_basic_auth("admin", PASSWORD)}
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


MonitorFactory = AppFactory


class JobRunner(Protocol):
    async def __call__(self, *, tier: str = "free", wait: bool = True) -> dict[str, Any]: ...


async def poll(check: Callable[[], Awaitable[bool]], *, within: float = 15.0, what: str) -> None:
    """Await `check` until it holds, failing with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def csrf_token(client: Client) -> str:
    """The CSRF token of the client's admin session (the dashboard starts one; the client keeps the cookie)."""
    page = await (await client.get("/admin/dashboard", headers=ADMIN)).text()
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page)
    assert found, page[:500]
    return found.group(1)


async def admin_post_headers(client: Client) -> dict[str, str]:
    """Every credential an admin POST needs: Basic, and the session's CSRF token."""
    return {**ADMIN, "X-CSRF-Token": await csrf_token(client)}


async def admin_json(client: Client, path: str) -> Any:
    response = await client.get(path, headers=ADMIN)
    assert response.status == 200, await response.text()
    return await response.json()


@pytest.fixture
def photo() -> bytes:
    """A small JPEG listing photo: sky over a lawn."""
    image = Image.new("RGB", (320, 240), (110, 160, 220))
    image.paste((70, 130, 60), (0, 150, 320, 240))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def monitor_settings(pool: asyncpg.Pool, settings_for: SettingsFactory) -> MonitorSettings:
    """This test's own tables (truncated through `pool`) and broker namespace; checks every 0.2 s."""
    return settings_for(MonitorSettings, admin_password=PASSWORD, check_interval=0.2, dashboard_refresh_seconds=0.5)


@pytest.fixture
def monitor_factory(monitor_settings: MonitorSettings, aiohttp_client: AiohttpClient) -> MonitorFactory:
    """Settings (and so the test's broker namespace) come first: apps close before their queues go.

    Overrides are validated as the environment's values are (secret URLs wrapped, CIDRs parsed).
    """

    async def make(**overrides: Any) -> Client:
        settings = MonitorSettings(**{**dict(monitor_settings), **overrides})
        return await aiohttp_client(create_monitor(settings))

    return make


@pytest.fixture
async def monitor(monitor_factory: MonitorFactory) -> Client:
    return await monitor_factory()


@pytest.fixture
async def api(pool: asyncpg.Pool, settings_for: SettingsFactory, aiohttp_client: AiohttpClient) -> Client:
    """The real api, called with an API key of a premium plan (every request carries it)."""
    _, token = await apikeys.create_key(
        pool, owner=f"monitor-tests-{uuid.uuid4().hex[:8]}", name="tests", plan="premium"
    )
    return await aiohttp_client(create_api(settings_for(ApiSettings)), headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def amqp(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": f"test:{request.node.name}"}
    )
    yield connection
    await connection.close()


async def queue_counts(connection: AbstractRobustConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) as the broker reports them."""
    channel = await connection.channel()
    try:
        result = (await channel.declare_queue(name, passive=True)).declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await channel.close()


@dataclass
class RunningWorker:
    settings: WorkerSettings
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.stop_event.set()
        async with asyncio.timeout(30):
            await self.task


@pytest.fixture
async def worker(
    settings_for: SettingsFactory, topology: Topology, amqp: AbstractRobustConnection
) -> AsyncIterator[Callable[..., Awaitable[RunningWorker]]]:
    """Start `services.worker.runner.run` in-process; each one started is stopped at teardown."""
    running: list[RunningWorker] = []

    async def start(**overrides: Any) -> RunningWorker:
        settings = settings_for(
            WorkerSettings,
            **{
                "worker_id": f"test-worker-{uuid.uuid4().hex[:6]}",
                "heartbeat_interval": 0.2,
                "shutdown_grace": 10,
                "concurrency": 1,
                "db_pool_max": 3,
                **overrides,
            },
        )
        stop = asyncio.Event()
        started = RunningWorker(settings, stop, asyncio.create_task(run(settings, stop)))
        running.append(started)

        async def consuming() -> bool:
            if started.task.done():
                await started.task
            counts = [await queue_counts(amqp, topology.work_queue(tier)) for tier in Tier]
            return all(consumers >= 1 for _, consumers in counts)

        await poll(consuming, within=20, what="the worker to consume")
        return started

    yield start
    for started in running:
        if not started.task.done():
            await started.stop()


@pytest.fixture
def run_job(api: Client, photo: bytes) -> JobRunner:
    """Upload a photo and submit a job the way the deployment guide's curl does; wait for its end."""

    async def submit(*, tier: str = "free", wait: bool = True) -> dict[str, Any]:
        form = FormData()
        form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
        asset = await api.post("/assets", data=form)
        assert asset.status == 201, await asset.text()
        fields = FormData(default_to_multipart=True)
        for name, value in {
            "asset_id": (await asset.json())["asset"]["id"],
            "prompt": "Test enhancement",
            "tier": tier,
        }.items():
            fields.add_field(name, value)
        created = await api.post("/jobs", data=fields)
        assert created.status == 202, await created.text()
        job: dict[str, Any] = (await created.json())["job"]
        if wait:
            job = await wait_for_job(api, job["id"])
        return job

    return submit


async def wait_for_job(api: Client, job_id: str, *, until: frozenset[str] = TERMINAL) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        nonlocal found
        found = (await (await api.get(f"/jobs/{job_id}")).json())["job"]
        return found["status"] in until

    await poll(reached, within=30, what=f"job {job_id} to finish")
    return found
