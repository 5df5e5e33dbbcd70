"""Sentry, pointed at a local endpoint: job errors arrive tagged and scrubbed; health checks are never traced."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from tests.system import processes
from tests.system.conftest import wait_for_status
from tests.system.receivers import SentryReceiver, sentry_receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SECRETS = {"Authorization": "Bearer very-secret-token", "Cookie": "session=cookie-secret-value"}


async def _wait_for(receiver: SentryReceiver, kind: str, count: int = 1, deadline_s: float = 20.0) -> list[dict]:  # type: ignore[type-arg]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = receiver.events(kind)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {kind} reached Sentry; got {[item for env in receiver.envelopes for item in env][:5]}")


def _assert_no_secrets(receiver: SentryReceiver) -> None:
    everything = b"\n".join(receiver.raw)
    assert b"very-secret-token" not in everything
    assert b"cookie-secret-value" not in everything


async def test_failed_job_reaches_sentry_tagged_and_scrubbed(
    service_env: dict[str, str], storage_dirs: tuple[Path, Path], log_dir: Path, photo: bytes
) -> None:
    uploads, _ = storage_dirs
    async with sentry_receiver() as receiver:
        env = {**service_env, "SENTRY_DSN": receiver.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1.0"}
        api = processes.start("api", env, log_dir, port=processes.free_port())
        worker = None
        try:
            await processes.wait_healthy(api)
            async with aiohttp.ClientSession(headers=SECRETS) as session:
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
            failed = await wait_for_status(api.url, job_id, {"failed", "succeeded"})
            assert failed["status"] == "failed"
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


async def test_health_is_never_a_transaction_but_jobs_are(service_env: dict[str, str], log_dir: Path) -> None:
    async with sentry_receiver() as receiver:
        env = {**service_env, "SENTRY_DSN": receiver.dsn, "SENTRY_TRACES_SAMPLE_RATE": "1.0"}
        api = processes.start("api", env, log_dir, port=processes.free_port())
        try:
            await processes.wait_healthy(api)
            async with aiohttp.ClientSession(headers=SECRETS) as session:
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
        assert headers.get("cookie") in (None, "[Filtered]")
    _assert_no_secrets(receiver)
