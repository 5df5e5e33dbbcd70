"""Fixtures for the API and pipeline tests: the real app, a real worker in-process, and ways to watch them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app
from services.api.settings import ApiSettings
from services.worker.runner import run
from services.worker.settings import WorkerSettings
from shared.domain import Tier
from shared.events import Event, decode
from shared.topology import Topology
from tests.conftest import AppFactory, SettingsFactory, app_factory, bearer
from tests.conftest import Client as Client  # the tests beside this conftest import it from here
from tests.worker.photos import encode, house

TERMINAL = frozenset({"succeeded", "failed", "canceled"})


ApiFactory = AppFactory


class Uploader(Protocol):
    async def __call__(
        self, data: bytes | None = None, *, filename: str = "house.jpg", content_type: str = "image/jpeg"
    ) -> dict[str, Any]: ...


class Submitter(Protocol):
    async def __call__(
        self,
        asset_id: str,
        *,
        prompt: str = "Test enhancement",
        tier: str = "free",
        style: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]: ...


class JobWaiter(Protocol):
    async def __call__(
        self, job_id: str, *, until: frozenset[str] = TERMINAL, within: float = 30.0
    ) -> dict[str, Any]: ...


class WorkerFactory(Protocol):
    async def __call__(self, *, concurrency: int = 2, **overrides: Any) -> RunningWorker: ...


class TapFactory(Protocol):
    async def __call__(self, *routing_keys: str) -> EventTap: ...


def job_form(fields: dict[str, str], *, file: bytes | None = None, filename: str = "house.jpg") -> FormData:
    """A multipart form as `curl -F` sends it, even when it holds no file."""
    form = FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    if file is not None:
        form.add_field("file", file, filename=filename, content_type="image/jpeg")
    return form


async def poll(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Await `check` until it holds, failing with `what` once `within` seconds have passed."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def photo() -> bytes:
    """A small listing photo: a house under a blue sky, as a 400x300 JPEG."""
    return encode(house(400, 300))


@pytest.fixture
def api_settings(pool: asyncpg.Pool, settings_for: SettingsFactory) -> ApiSettings:
    """Settings of this test's own: fresh tables (through `pool`), broker prefix and storage."""
    return settings_for(ApiSettings)


@pytest.fixture
async def auth(pool: asyncpg.Pool) -> dict[str, str]:
    """The Authorization header of the test's own key: owner `tester`, premium, no limit in reach."""
    return await bearer(pool)


@pytest.fixture
def api_factory(aiohttp_client: AiohttpClient, api_settings: ApiSettings, auth: dict[str, str]) -> ApiFactory:
    """The real app behind a test client that sends the test's key, with settings overridden per test."""
    return app_factory(aiohttp_client, create_app, api_settings, headers=auth)


@pytest.fixture
async def api(api_factory: ApiFactory) -> Client:
    return await api_factory()


@pytest.fixture
def upload(api: Client, photo: bytes) -> Uploader:
    """Upload a photo through POST /assets and return the asset it answers with."""

    async def post(
        data: bytes | None = None, *, filename: str = "house.jpg", content_type: str = "image/jpeg"
    ) -> dict[str, Any]:
        form = FormData()
        form.add_field("file", photo if data is None else data, filename=filename, content_type=content_type)
        response = await api.post("/assets", data=form)
        assert response.status == 201, await response.text()
        asset: dict[str, Any] = (await response.json())["asset"]
        return asset

    return post


@pytest.fixture
def submit(api: Client) -> Submitter:
    """Submit a job with the deployment guide's multipart form and return it."""

    async def post(
        asset_id: str,
        *,
        prompt: str = "Test enhancement",
        tier: str = "free",
        style: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        fields = {"asset_id": asset_id, "prompt": prompt, "tier": tier}
        if style is not None:
            fields["style"] = style
        headers = {"Idempotency-Key": key} if key else {}
        response = await api.post("/jobs", data=job_form(fields), headers=headers)
        assert response.status == 202, await response.text()
        job: dict[str, Any] = (await response.json())["job"]
        return job

    return post


@pytest.fixture
def wait_for_job(api: Client) -> JobWaiter:
    """Poll GET /jobs/{id} until the job reaches one of `until`, within a deadline."""

    async def wait(job_id: str, *, until: frozenset[str] = TERMINAL, within: float = 30.0) -> dict[str, Any]:
        last: dict[str, Any] = {}

        async def reached() -> bool:
            nonlocal last
            response = await api.get(f"/jobs/{job_id}")
            assert response.status == 200, await response.text()
            last = (await response.json())["job"]
            return last["status"] in until

        await poll(reached, within=within, what=f"job {job_id} to reach {sorted(until)}")
        return last

    return wait


@pytest.fixture
def worker_settings(settings_for: SettingsFactory) -> WorkerSettings:
    return settings_for(
        WorkerSettings, worker_id=f"test-worker-{uuid.uuid4().hex[:6]}", heartbeat_interval=0.2, shutdown_grace=20
    )


@pytest.fixture
async def amqp(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    """The test's own broker connection, for publishing raw messages and inspecting queues."""
    connection = await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": f"test:{request.node.name}"}
    )
    yield connection
    await connection.close()


async def queue_counts(connection: AbstractRobustConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of a queue, as the broker reports them; fails if there is no such queue."""
    # A channel of its own: a passive declare of a missing queue closes the channel it was sent on.
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        if not channel.is_closed:
            await channel.close()


@dataclass
class RunningWorker:
    """A `run()` task of this test; `stop()` is the SIGTERM path: set the event, await a clean return."""

    settings: WorkerSettings
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self, within: float = 30.0) -> None:
        self.stop_event.set()
        async with asyncio.timeout(within):
            await self.task  # re-raises whatever ended the worker


async def wait_consuming(connection: AbstractRobustConnection, topology: Topology, task: asyncio.Task[None]) -> None:
    """Wait until the broker reports a consumer on every work queue (or the worker died trying)."""

    async def consuming() -> bool:
        if task.done():
            await task
            pytest.fail("the worker returned before it started consuming")
        try:
            counts = [await queue_counts(connection, topology.work_queue(tier)) for tier in Tier]
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False  # the worker has not declared the topology yet
        return all(consumers >= 1 for _, consumers in counts)

    await poll(consuming, within=20, what="the worker to consume every work queue")


@pytest.fixture
async def worker(
    worker_settings: WorkerSettings, amqp: AbstractRobustConnection, topology: Topology
) -> AsyncIterator[WorkerFactory]:
    """Start `services.worker.runner.run` in-process; every worker started is stopped at teardown."""
    running: list[RunningWorker] = []

    async def start(*, concurrency: int = 2, **overrides: Any) -> RunningWorker:
        settings = worker_settings.model_copy(update={"concurrency": concurrency, **overrides})
        stop = asyncio.Event()
        started = RunningWorker(settings, stop, asyncio.create_task(run(settings, stop)))
        running.append(started)
        await wait_consuming(amqp, topology, started.task)
        return started

    yield start
    for started in running:
        await started.stop()


class EventTap:
    """A temporary queue of the test's own, bound to the events exchange, that nobody consumes."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue

    async def count(self) -> int:
        # Re-declared for a fresh count: a robust channel answers a passive declare from its cache.
        return (await self.queue.declare()).message_count or 0

    async def events(self) -> list[Event]:
        """Take everything the queue holds, decoded."""
        found: list[Event] = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            found.append(decode(message.body)[0])
        return found


@pytest.fixture
async def tap(amqp: AbstractRobustConnection, topology: Topology) -> AsyncIterator[TapFactory]:
    """Bind queues to the events exchange (declared by the app or worker first) to count what is published."""
    channel = await amqp.channel()

    async def bind(*routing_keys: str) -> EventTap:
        events = await channel.get_exchange(topology.events_exchange, ensure=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True, robust=False)
        for key in routing_keys:
            await queue.bind(events, key)
        return EventTap(channel, queue)

    yield bind
    await channel.close()


async def table_counts(
    pool: asyncpg.Pool, tables: Sequence[str] = ("assets", "jobs", "job_events", "outbox")
) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


def stored_files(directory: Path) -> list[str]:
    """The finished files in a storage root (atomic writes leave no hidden temporaries behind)."""
    return sorted(path.name for path in directory.iterdir())
