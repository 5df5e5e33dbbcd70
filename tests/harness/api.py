"""The real api app behind a test client that sends the test's own key, and ways to drive and watch it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
from aiohttp import FormData
from pytest_aiohttp import AiohttpClient

from services.api import keys
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared import outbox
from tests.conftest import AppFactory, Client, SettingsFactory, app_factory, bearer
from tests.harness.poll import poll
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


def job_form(fields: dict[str, str], *, file: bytes | None = None, filename: str = "house.jpg") -> FormData:
    """A multipart form as `curl -F` sends it, even when it holds no file."""
    form = FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    if file is not None:
        form.add_field("file", file, filename=filename, content_type="image/jpeg")
    return form


@pytest.fixture
def photo() -> bytes:
    """A small listing photo: a house under a blue sky, as a 400x300 JPEG."""
    return encode(house(400, 300))


@pytest.fixture
def api_settings(pool: asyncpg.Pool, settings_for: SettingsFactory) -> ApiSettings:
    """Settings of this test's own: fresh tables (through `pool`), broker prefix and storage."""
    return settings_for(ApiSettings, heartbeat_interval=1.0)


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
        await published(api)  # what a test reads of the broker next includes this job's announcement
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

        await poll(reached, within=within, what=lambda: f"job {job_id} to reach {sorted(until)}; last: {last}")
        return last

    return wait


async def table_counts(
    pool: asyncpg.Pool, tables: Sequence[str] = ("assets", "jobs", "job_events", "outbox")
) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables}


async def published(api: Client) -> None:
    """Until the api's publishes under way are done and marked: it answers once a job is committed, and
    its announcement leaves after the answer (shared/outbox/publishing.py)."""
    await api.app[keys.PUBLISHER].settle()
    await outbox.marks_of(api.app[keys.POOL]).settle()


def all_marked_published(pool: asyncpg.Pool) -> Callable[[], Awaitable[bool]]:
    """A check for poll: every outbox row marked published (the api marks them after it answers)."""

    async def check() -> bool:
        return bool(await pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE published_at IS NULL"))

    return check


def stored_files(directory: Path) -> list[str]:
    """The finished files in a storage root (atomic writes leave no hidden temporaries behind)."""
    return sorted(path.name for path in directory.iterdir())
