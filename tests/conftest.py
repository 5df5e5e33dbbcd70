"""Fixtures for every test: the real PostgreSQL and RabbitMQ, isolated per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from shared.apikeys import create_key
from shared.assets import Asset, insert_asset
from shared.broker import Broker
from shared.db import Queryable, create_pool, split_database
from shared.migrate import migrate
from shared.settings import BaseServiceSettings
from shared.topology import Topology
from tests.harness.nodes import connect_any
from tests.s3 import create_bucket, new_bucket_name, s3_environment, s3_server

# The one harness every directory shares (pytest reads pytest_plugins only in this, the rootdir conftest).
pytest_plugins = (
    "tests.harness.api",
    "tests.harness.broker",
    "tests.harness.worker",
    "tests.harness.monitor",
    "tests.harness.browser",
)

# A database of this run's own, so two test runs on one machine cannot drop each other's tables.
DATABASE_URL = os.environ.get("TEST_DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/luster_test_{os.getpid()}")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TABLES = (
    "outbox",
    "job_events",
    "jobs",
    "assets",
    "workers",
    "rate_windows",
    "api_keys",
    "engine_spend",
    "spend_holds",
    "batches",
    "webhook_deliveries",
)
SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


async def _drop_database(dsn: str) -> None:
    maintenance, name = split_database(dsn)
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database built from scratch by the migrations, once per test session."""
    asyncio.run(_drop_database(DATABASE_URL))  # migrate() creates it afresh
    migrate(DATABASE_URL)
    yield DATABASE_URL
    asyncio.run(_drop_database(DATABASE_URL))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)  # the services' own: jsonb as Python objects
    await pool.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    yield pool
    await pool.close()


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
async def topology(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[Topology]:
    """A namespace of exchanges and queues of this test's own, deleted afterwards."""
    topology = Topology(prefix=f"test-{uuid.uuid4().hex[:10]}")
    yield topology
    connection = await connect_any(amqp_url, name=f"cleanup:{request.node.name}")
    async with connection:
        channel = await connection.channel()
        for queue in topology.all_queues():
            await channel.queue_delete(queue)
        for exchange in (topology.events_exchange, topology.dead_exchange):
            await channel.exchange_delete(exchange)


@pytest.fixture
async def broker(request: pytest.FixtureRequest, amqp_url: str, topology: Topology) -> AsyncIterator[Broker]:
    """A confirming broker connection in the test's own namespace, named after the test."""
    broker = await Broker.connect(amqp_url, topology, name=f"test:{request.node.name}", startup_timeout=10)
    yield broker
    await broker.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One S3-compatible server for the session; each test that uses it gets a bucket of its own."""
    with s3_server(tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint: str) -> dict[str, str]:
    """The variables that put a service on a fresh bucket of this test's own."""
    bucket = new_bucket_name()
    create_bucket(s3_endpoint, bucket)
    return s3_environment(s3_endpoint, bucket)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Where the processes a test starts write their logs (shown when it fails)."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def storage_dirs(tmp_path: Path) -> tuple[Path, Path]:
    uploads, outputs = tmp_path / "uploads", tmp_path / "outputs"
    uploads.mkdir()
    outputs.mkdir()
    return uploads, outputs


class SettingsFactory(Protocol):
    def __call__(self, cls: type[SettingsT], **overrides: Any) -> SettingsT: ...


Client = TestClient[web.Request, web.Application]


class AppFactory(Protocol):
    async def __call__(self, **overrides: Any) -> Client: ...


def app_factory(
    aiohttp_client: AiohttpClient,
    create: Callable[[SettingsT], web.Application],
    settings: SettingsT,
    *,
    headers: dict[str, str] | None = None,
) -> AppFactory:
    """A service's real app behind a test client, with its settings overridden per test (and default headers)."""

    async def make(**overrides: Any) -> Client:
        return await aiohttp_client(create(settings.model_copy(update=overrides)), headers=headers)

    return make


@pytest.fixture
def settings_for(
    database_url: str, amqp_url: str, topology: Topology, storage_dirs: tuple[Path, Path]
) -> SettingsFactory:
    """Settings of any service for this test: its database, broker namespace and storage; quiet logs."""
    uploads, outputs = storage_dirs

    def make(cls: type[SettingsT], **overrides: Any) -> SettingsT:
        defaults: dict[str, Any] = {
            "database_url": database_url,
            "amqp_url": amqp_url,
            "broker_prefix": topology.prefix,
            "uploads_dir": uploads,
            "outputs_dir": outputs,
            "environment": "test",
            "log_level": "WARNING",
            "startup_timeout": 10,
            "db_pool_max": 4,
        }
        return cls(**{**defaults, **overrides})

    return make


@pytest.fixture
def service_env(
    database_url: str, amqp_url: str, topology: Topology, storage_dirs: tuple[Path, Path]
) -> dict[str, str]:
    """The environment a service process (or a settings class) of this test reads."""
    uploads, outputs = storage_dirs
    return {
        "DATABASE_URL": database_url,
        "AMQP_URL": amqp_url,
        "BROKER_PREFIX": topology.prefix,
        "UPLOADS_DIR": str(uploads),
        "OUTPUTS_DIR": str(outputs),
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "test",
        "METRICS_PORT": "0",  # a worker's metrics on a free port: tests run side by side
    }


TEST_OWNER = "tester"
# Limits no functional test reaches; the limits' own tests create keys with small ones.
UNLIMITED = {"requests_per_minute": 1_000_000, "jobs_in_flight": 1_000_000, "bytes_per_day": 10**15}


async def bearer(
    pool: asyncpg.Pool, *, owner: str = TEST_OWNER, plan: str = "premium", **limits: Any
) -> dict[str, str]:
    """The Authorization header of a fresh API key of `owner`."""
    _, token = await create_key(pool, owner=owner, name=f"test key of {owner}", plan=plan, **(UNLIMITED | limits))
    return {"Authorization": f"Bearer {token}"}


async def record_asset(
    pool: Queryable, storage_key: str | None = None, *, owner: str = TEST_OWNER, job_follows: bool = False
) -> Asset:
    """An asset row for a photo the test never uploads (under a fresh key unless it names one)."""
    return await insert_asset(
        pool,
        asset_id=uuid.uuid4(),
        filename="house.jpg",
        content_type="image/jpeg",
        size_bytes=1234,
        width=400,
        height=300,
        sha256="0" * 64,
        storage_key=storage_key or f"{uuid.uuid4()}.jpg",
        owner=owner,
        job_follows=job_follows,
    )
