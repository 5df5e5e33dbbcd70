"""Secrets stay secret in logs: the three services run as deployed with every credential configured,
a job goes through, an operator signs in, and not one log line carries a configured secret value,
a URL with its password, or an Authorization header."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from shared import apikeys
from tests.harness.poll import poll
from tests.system import processes
from tests.system.receivers import otlp_receiver, sentry_receiver
from tests.system.secrets import Secrets, environment, new_secrets, rabbitmq_user

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# scheme://user:password@ — whatever the password, a URL with one must never be logged whole.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@\"']+:(?!\*\*\*@)[^/\s@\"']+@", re.I)


def _read_logs(log_dir: Path) -> dict[str, str]:
    """Every line the processes wrote (they have stopped: nothing else is waiting on this loop)."""
    return {path.name: path.read_text(errors="replace") for path in log_dir.glob("*.log")}


async def _job_status(session: aiohttp.ClientSession, job_url: str, deadline_s: float = 60.0) -> str:
    status = "unknown"

    async def finished() -> bool:
        nonlocal status
        async with session.get(job_url) as response:
            status = str((await response.json())["job"]["status"])
        return status in ("failed", "succeeded", "canceled")

    await poll(finished, within=deadline_s, every=0.2, what=lambda: f"{job_url} to finish; last: {status}")
    return status


async def _drive(api: processes.Service, monitor: processes.Service, token: str, found: Secrets, photo: bytes) -> None:
    """What a day looks like: an upload, a job to success, an operator on the dashboard, a failed login."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        form = aiohttp.FormData()
        form.add_field("file", photo, filename="listing.jpg", content_type="image/jpeg")
        async with session.post(f"{api.url}/assets", data=form) as response:
            assert response.status == 201, await response.text()
            asset_id = (await response.json())["asset"]["id"]
        payload = {"asset_id": asset_id, "prompt": "make it shine", "tier": "free"}
        async with session.post(f"{api.url}/jobs", json=payload) as response:
            assert response.status == 202, await response.text()
            job_id = (await response.json())["job"]["id"]
        assert await _job_status(session, f"{api.url}/jobs/{job_id}") == "succeeded"
        async with session.get(f"{api.url}/jobs/not-a-job") as response:
            assert response.status in (404, 422)
    operator = {"Authorization": aiohttp.encode_basic_auth("admin", found.admin_password)}
    async with aiohttp.ClientSession() as session:
        for path in ("/admin/health", "/admin/dashboard", "/admin/queues", "/metrics"):
            async with session.get(f"{monitor.url}{path}", headers=operator) as response:
                assert response.status == 200, (path, await response.text())
        wrong = {"Authorization": aiohttp.encode_basic_auth("admin", "wrong password")}
        async with session.get(f"{monitor.url}/admin/health", headers=wrong) as response:
            assert response.status == 401


async def test_no_log_line_carries_a_secret(
    pool: asyncpg.Pool, service_env: dict[str, str], log_dir: Path, photo: bytes
) -> None:
    found = new_secrets()
    _, token = await apikeys.create_key(pool, owner="secrets-test", name="secrets", plan="premium")
    with rabbitmq_user(found.broker_user, found.broker_password):
        async with sentry_receiver() as sentry, otlp_receiver() as otlp:
            env = {
                **environment(service_env, found, sentry_dsn=sentry.dsn, otlp_url=otlp.url),
                "LOG_LEVEL": "DEBUG",  # the most a service ever says
            }
            api = processes.start("api", env, log_dir, port=processes.free_port())
            monitor = processes.start("monitor", env, log_dir, port=processes.free_port())
            worker = processes.start("worker", env, log_dir)
            try:
                await processes.wait_healthy(api)
                await processes.wait_healthy(monitor)
                await _drive(api, monitor, token, found, photo)
            finally:
                codes = {service.name: service.stop() for service in (api, worker, monitor)}
    assert codes == {"api": 0, "worker": 0, "monitor": 0}, codes
    logs = _read_logs(log_dir)
    assert set(logs) == {"api.log", "worker.log", "monitor.log"}
    assert all(text.count("\n") > 5 for text in logs.values()), logs  # they did log: the grep means something
    basic = base64.b64encode(f"admin:{found.admin_password}".encode()).decode()
    forbidden = {**found.values(), "API key": token, "Basic credentials": basic, "broker URL": env["AMQP_URL"]}
    hits = {f"{name}: {what}" for name, text in logs.items() for what, value in forbidden.items() if value in text}
    assert not hits, sorted(hits)
    with_password = {name: URL_WITH_PASSWORD.findall(text) for name, text in logs.items()}
    assert not any(with_password.values()), with_password
    authorization = {
        name: re.findall(r"(?i)authorization['\"]?\s*[:=]\s*['\"]?\w", text) for name, text in logs.items()
    }
    assert not any(authorization.values()), authorization
