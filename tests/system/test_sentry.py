"""Sentry, pointed at a local endpoint: job errors arrive tagged and scrubbed; health checks are never traced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from shared import apikeys
from tests.harness.poll import poll
from tests.system import processes
from tests.system.receivers import SentryReceiver, otlp_receiver, sentry_receiver
from tests.system.secrets import environment, new_secrets, rabbitmq_user

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRETS = {"X-Api-Key": "very-secret-token", "Cookie": "session=cookie-secret-value"}


async def _wait_for(
    receiver: SentryReceiver, kind: str, count: int = 1, deadline_s: float = 20.0
) -> list[dict[str, Any]]:
    async def arrived() -> list[dict[str, Any]]:
        found = receiver.events(kind)
        return found if len(found) >= count else []

    def got() -> str:
        return f"{count} {kind} to reach Sentry; got {[item for env in receiver.envelopes for item in env][:5]}"

    return await poll(arrived, within=deadline_s, every=0.2, what=got)


def _assert_no_secrets(receiver: SentryReceiver) -> None:
    everything = b"\n".join(receiver.raw)
    assert b"very-secret-token" not in everything
    assert b"cookie-secret-value" not in everything


async def test_failed_job_reaches_sentry_tagged_and_scrubbed(
    pool: asyncpg.Pool, service_env: dict[str, str], storage_dirs: tuple[Path, Path], log_dir: Path, photo: bytes
) -> None:
    uploads, _ = storage_dirs
    _, token = await apikeys.create_key(pool, owner="sentry-tags", name="sentry", plan="premium")
    async with sentry_receiver() as receiver:
        env = {**service_env, "SENTRY_DSN": receiver.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1.0"}
        api = processes.start("api", env, log_dir, port=processes.free_port())
        worker = None
        try:
            await processes.wait_healthy(api)
            async with aiohttp.ClientSession(headers={**SECRETS, "Authorization": f"Bearer {token}"}) as session:
                form = aiohttp.FormData()
                form.add_field("file", photo, filename="listing.jpg", content_type="image/jpeg")
                async with session.post(f"{api.url}/assets", data=form) as response:
                    asset_id = (await response.json())["asset"]["id"]
                # The original rots in storage: the worker's engine must fail on it.
                next(uploads.glob(f"{asset_id}.*")).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg any more")
                worker = processes.start("worker", env, log_dir)
                payload = {"asset_id": asset_id, "prompt": "make it shine", "tier": "free", "style": "dusk"}
                async with session.post(f"{api.url}/jobs", json=payload) as response:
                    assert response.status == 202
                    job_id = (await response.json())["job"]["id"]
                assert await _finished(session, f"{api.url}/jobs/{job_id}") == "failed"
            events = await _wait_for(receiver, "event")
        finally:
            api.stop()
            if worker is not None:
                worker.stop()
    tagged = [event for event in events if event.get("tags", {}).get("job_id") == job_id]
    assert tagged, json.dumps(events)[:2000]
    tags = tagged[0]["tags"]
    assert tags["tier"] == "free" and tags["engine"] == "local"
    assert tagged[0]["environment"] == "test"
    _assert_no_secrets(receiver)


async def test_health_is_never_a_transaction_but_jobs_are(
    pool: asyncpg.Pool, service_env: dict[str, str], log_dir: Path
) -> None:
    _, token = await apikeys.create_key(pool, owner="sentry-health", name="sentry", plan="premium")
    async with sentry_receiver() as receiver:
        env = {**service_env, "SENTRY_DSN": receiver.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1.0"}
        api = processes.start("api", env, log_dir, port=processes.free_port())
        try:
            await processes.wait_healthy(api)
            async with aiohttp.ClientSession(headers={**SECRETS, "Authorization": f"Bearer {token}"}) as session:
                for _ in range(3):
                    async with session.get(f"{api.url}/health") as response:
                        assert response.status == 200
                async with session.get(f"{api.url}/jobs?limit=1") as response:
                    assert response.status == 200
            transactions = await _wait_for(receiver, "transaction")
        finally:
            assert api.stop() == 0
    names = [t.get("transaction", "") for t in transactions]
    assert not any("health" in name for name in names), names
    assert any("list_jobs" in name for name in names), names
    for transaction in transactions:
        request = transaction.get("request", {})
        assert "REMOTE_ADDR" not in request.get("env", {})
        assert "user" not in transaction
        headers = {k.lower(): v for k, v in request.get("headers", {}).items()}
        assert headers.get("authorization") in (None, "[Filtered]")
        assert headers.get("x-api-key") in (None, "[Filtered]")
        assert headers.get("cookie") in (None, "[Filtered]")
    _assert_no_secrets(receiver)
    assert token.encode() not in b"\n".join(receiver.raw)


async def test_errors_in_a_request_and_a_job_carry_no_secret(
    pool: asyncpg.Pool, service_env: dict[str, str], storage_dirs: tuple[Path, Path], log_dir: Path, photo: bytes
) -> None:
    """Sentry captures no local variables, and masks every configured secret wherever else it could be."""
    uploads, _ = storage_dirs
    found = new_secrets()
    _, token = await apikeys.create_key(pool, owner="sentry-test", name="sentry", plan="premium")
    with rabbitmq_user(found.broker_user, found.broker_password):
        async with sentry_receiver() as receiver, otlp_receiver() as otlp:
            env = environment(service_env, found, sentry_dsn=receiver.dsn, otlp_url=otlp.url)
            api = processes.start("api", env, log_dir, port=processes.free_port())
            worker = processes.start("worker", env, log_dir)
            try:
                await processes.wait_healthy(api)
                headers = {**SECRETS, "Authorization": f"Bearer {token}"}
                async with aiohttp.ClientSession(headers=headers) as session:
                    asset_id = await _upload(session, api.url, photo)
                    # A job error: the original rots in storage, so the worker's engine fails on it.
                    next(uploads.glob(f"{asset_id}.*")).write_bytes(b"\xff\xd8\xff\xe0 not a jpeg any more")
                    payload = {"asset_id": asset_id, "prompt": "make it shine", "tier": "free"}
                    async with session.post(f"{api.url}/jobs", json=payload) as response:
                        assert response.status == 202, await response.text()
                        job_id = (await response.json())["job"]["id"]
                    assert await _finished(session, f"{api.url}/jobs/{job_id}") == "failed"
                    # A request error: the uploads directory becomes a file, so storing the next upload crashes.
                    uploads.rename(uploads.with_name("uploads-gone"))
                    uploads.write_bytes(b"")
                    form = aiohttp.FormData()
                    form.add_field("file", photo, filename="listing.jpg", content_type="image/jpeg")
                    async with session.post(f"{api.url}/assets", data=form) as response:
                        assert response.status == 500, await response.text()
                events = await _wait_for(receiver, "event", count=2)
            finally:
                api.stop()
                worker.stop()
    assert any(event.get("tags", {}).get("job_id") == job_id for event in events), json.dumps(events)[:2000]
    assert any("/assets" in (event.get("request") or {}).get("url", "") for event in events), json.dumps(events)[:2000]
    everything = b"\n".join(receiver.raw).decode(errors="replace")
    leaked = {what: value for what, value in {**found.values(), "API key": token}.items() if value in everything}
    assert not leaked, f"in the Sentry envelopes: {sorted(leaked)}"
    for event in events:
        for exception in (event.get("exception") or {}).get("values", []):
            assert all("vars" not in frame for frame in (exception.get("stacktrace") or {}).get("frames", []))
    _assert_no_secrets(receiver)


async def _upload(session: aiohttp.ClientSession, api_url: str, photo: bytes) -> str:
    form = aiohttp.FormData()
    form.add_field("file", photo, filename="listing.jpg", content_type="image/jpeg")
    async with session.post(f"{api_url}/assets", data=form) as response:
        assert response.status == 201, await response.text()
        asset_id: str = (await response.json())["asset"]["id"]
        return asset_id


async def _finished(session: aiohttp.ClientSession, job_url: str, deadline_s: float = 60.0) -> str:
    """The job's terminal status, polled with the caller's key (GET /jobs/{id} is the owner's)."""
    status = "unknown"

    async def finished() -> bool:
        nonlocal status
        async with session.get(job_url) as response:
            status = (await response.json())["job"]["status"]
        return status in ("failed", "succeeded", "canceled")

    await poll(finished, within=deadline_s, every=0.2, what=lambda: f"{job_url} to finish; last: {status}")
    return status
