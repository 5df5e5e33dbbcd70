"""Jobs run through the real API and worker show up in the monitor, and survive a monitor restart."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from tests.harness.monitor import JobRunner, MonitorFactory, admin_json
from tests.harness.poll import poll
from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration


async def _health(monitor: Client) -> dict[str, Any]:
    response = await monitor.get("/health")
    body: dict[str, Any] = await response.json()
    assert response.status == (503 if body["status"] == "unhealthy" else 200)
    return body


async def test_jobs_show_up_in_health_and_admin_health(
    monitor: Client, worker: WorkerFactory, run_job: JobRunner
) -> None:
    await worker()
    done = [await run_job(tier="premium"), await run_job(tier="free")]
    assert [job["status"] for job in done] == ["succeeded", "succeeded"]

    async def counted() -> bool:
        body = await admin_json(monitor, "/admin/health")
        workers = body["workers"]
        # The worker's own counters arrive with its next heartbeat, a moment after the job events;
        # the census by status is exact only at a check (events racing a count can drift it until
        # the next one), so wait for a check that agrees with the events.
        return bool(
            body["jobs"] == {"queued": 0, "processing": 0, "succeeded": 2, "failed": 0, "canceled": 0}
            and (await _health(monitor))["queue"] == {"depth": 0, "waiting": 0}
            and body["windows"]["1h"]["succeeded"] == 2
            and workers["estimated_active"] == 1
            and workers["list"][0]["processed"] == 2
        )

    await poll(counted, what="both jobs and the worker's counters in /admin/health")
    health = await _health(monitor)
    assert health["status"] == "healthy", health
    assert health["services"] == {"database": "healthy", "broker": "healthy", "api": "healthy"}
    assert health["workers"] == {"estimated_active": 1}
    assert health["queue"] == {"depth": 0, "waiting": 0}
    assert set(health) == {"status", "services", "workers", "queue", "checked_at"}

    admin = await admin_json(monitor, "/admin/health")
    # The deployment guide's "Verify Deployment" shape, within the detailed view.
    assert admin["status"] == "healthy"
    assert admin["services"] == {"database": "healthy", "broker": "healthy", "api": "healthy"}
    assert admin["workers"]["estimated_active"] == 1
    hour = admin["windows"]["1h"]
    assert admin["jobs"] == {"queued": 0, "processing": 0, "succeeded": 2, "failed": 0, "canceled": 0}
    assert (hour["queued"], hour["started"], hour["succeeded"], hour["failed"]) == (2, 2, 2, 0)
    assert hour["success_rate"] == 1.0
    for metric in ("queue_wait", "processing", "end_to_end"):
        assert hour["latency"][metric]["all"]["count"] == 2
        assert hour["latency"][metric]["premium"]["count"] == 1
        assert hour["latency"][metric]["all"]["p50"] > 0
    assert admin["workers"]["list"][0]["status"] == "active"


async def test_restarted_monitor_shows_the_same_totals(
    monitor_factory: MonitorFactory, worker: WorkerFactory, run_job: JobRunner
) -> None:
    first = await monitor_factory()
    await worker()
    for tier in ("free", "premium", "free"):
        await run_job(tier=tier)

    async def settled() -> bool:
        # Events and the census of jobs by status arrive separately: compare only once both have.
        health = await admin_json(first, "/admin/health")
        return bool(health["windows"]["1h"]["succeeded"] == 3 and health["jobs"].get("succeeded") == 3)

    await poll(settled, what="three jobs counted, in the windows and in the census")
    before = await admin_json(first, "/admin/health")
    await first.close()

    second = await monitor_factory()
    after = await admin_json(second, "/admin/health")
    assert after["jobs"] == before["jobs"]
    for window in ("5m", "1h"):
        for field in ("queued", "started", "succeeded", "failed", "retried", "canceled", "success_rate"):
            assert after["windows"][window][field] == before["windows"][window][field], (window, field)
        for metric in ("queue_wait", "processing", "end_to_end"):
            for scope in ("all", "free", "premium"):
                counts = [snap["windows"][window]["latency"][metric][scope]["count"] for snap in (before, after)]
                assert counts[0] == counts[1], (window, metric, scope)
