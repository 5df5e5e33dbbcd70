"""The real monitor app, its operator's credentials, and a job run end to end through the api to watch."""

from __future__ import annotations

import re
from typing import Any, Protocol

import aiohttp
import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from tests.conftest import AppFactory, Client, SettingsFactory
from tests.harness.api import JobWaiter, Submitter, Uploader

PASSWORD = "correct horse battery staple"
ADMIN = {"Authorization": aiohttp.encode_basic_auth("admin", PASSWORD)}

MonitorFactory = AppFactory


class JobRunner(Protocol):
    async def __call__(self, *, tier: str = "free", wait: bool = True) -> dict[str, Any]: ...


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
        return await aiohttp_client(create_app(settings))

    return make


@pytest.fixture
async def monitor(monitor_factory: MonitorFactory) -> Client:
    return await monitor_factory()


@pytest.fixture
def run_job(upload: Uploader, submit: Submitter, wait_for_job: JobWaiter) -> JobRunner:
    """Upload a photo and submit a job the way the deployment guide's curl does; wait for its end."""

    async def run(*, tier: str = "free", wait: bool = True) -> dict[str, Any]:
        job = await submit((await upload())["id"], tier=tier)
        return await wait_for_job(job["id"]) if wait else job

    return run
