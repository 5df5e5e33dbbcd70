"""Fixtures for system tests: real service processes, a photo to send, and a place for their logs."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import bearer
from tests.harness.poll import poll
from tests.worker.photos import encode, house


@pytest.fixture
def photo() -> bytes:
    return encode(house(480, 320))


@pytest.fixture
async def api_key(pool: asyncpg.Pool) -> dict[str, str]:
    """The Authorization header of a key in the test's database, for clients of api processes."""
    return await bearer(pool)


async def submit_job(
    api_url: str, photo: bytes, headers: dict[str, str] | None = None, **fields: str
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", photo, filename="listing.jpg", content_type="image/jpeg")
    for name, value in {"prompt": "Test enhancement", "tier": "premium", **fields}.items():
        form.add_field(name, value)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{api_url}/jobs", data=form, headers=headers) as response,
    ):
        assert response.status == 202, await response.text()
        job: dict[str, Any] = (await response.json())["job"]
        return job


async def wait_for_status(
    api_url: str, job_id: str, statuses: set[str], deadline_s: float = 60.0, *, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    job: dict[str, Any] = {}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def reached() -> bool:
            nonlocal job
            async with session.get(f"{api_url}/jobs/{job_id}") as response:
                job = (await response.json())["job"]
            return job["status"] in statuses

        await poll(reached, within=deadline_s, every=0.2, what=lambda: f"job {job_id} to reach {statuses}; last: {job}")
    return job
