"""Alerts end to end: rules fire on the real system, each transition is posted once to a Slack-style webhook."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.harness.monitor import JobRunner, MonitorFactory, admin_json
from tests.harness.poll import poll
from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> tuple[str, list[dict[str, Any]]]:
    """A real HTTP server standing in for Slack's incoming webhook: it records every body posted."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook")), received


async def test_transitions_are_posted_once_each(
    monitor_factory: MonitorFactory,
    receiver: tuple[str, list[dict[str, Any]]],
    worker: WorkerFactory,
    run_job: JobRunner,
) -> None:
    url, received = receiver
    monitor = await monitor_factory(alert_webhook_url=url, alert_queue_depth=1, alert_consecutive_checks=2)
    for _ in range(2):
        await run_job(wait=False)  # no worker yet: both wait in the queue

    def texts(state: str) -> list[str]:
        return sorted(body["text"] for body in received if f" {state} " in body["text"])

    async def fired() -> bool:
        return len(texts("FIRING")) == 2

    await poll(fired, what="queue depth and no-worker alerts to be posted")
    assert "queue_depth: 2 jobs waiting for a worker, above 1: scale up the worker service" in texts("FIRING")[1]
    assert texts("FIRING")[0].startswith(":red_circle: [luster test] FIRING no_active_worker: 2 jobs queued")
    health = await (await monitor.get("/health")).json()
    assert health["status"] == "degraded"

    await worker()

    async def resolved() -> bool:
        return len(texts("RESOLVED")) == 2

    await poll(resolved, within=30, what="both alerts to resolve once the worker drains the queue")
    assert len(received) == 4  # every check re-evaluated the rules; each transition went out once
    alerts = await admin_json(monitor, "/admin/alerts")
    assert alerts["active"] == []
    assert [t["state"] for t in alerts["history"]].count("firing") == 2
    assert {rule["name"] for rule in alerts["rules"]} >= {"error_rate", "latency_p95", "failure_rate"}
