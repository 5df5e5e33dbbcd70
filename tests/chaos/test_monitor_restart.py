"""Scenario 13: the monitor SIGKILLed under load and started again; its totals must recover."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

import aiohttp
import pytest

from shared.domain import JobStatus
from tests.chaos.environment import ADMIN_PASSWORD
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE
from tests.chaos.stack import wait_http
from tests.harness.poll import TimedOut, poll

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout())]

HOUR_FIGURES = {"queued": "job.queued", "started": "job.started", "succeeded": "job.succeeded", "failed": "job.failed"}


async def _admin_health(url: str) -> dict[str, Any]:
    headers = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(f"{url}/admin/health", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def _truth(chaos: Chaos) -> dict[str, Any]:
    """What the monitor should show: PostgreSQL's jobs by status, and the last hour's events."""
    statuses = {status.value: 0 for status in JobStatus}
    for record in await chaos.pool.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status"):
        statuses[record["status"]] = record["n"]
    rows = await chaos.pool.fetch("SELECT type, count(*) AS n FROM job_events GROUP BY type")
    events = {r["type"]: r["n"] for r in rows}
    return {"jobs": statuses, "1h": {figure: events.get(kind, 0) for figure, kind in HOUR_FIGURES.items()}}


def _shown(body: dict[str, Any]) -> dict[str, Any]:
    hour = body["windows"]["1h"]
    return {"jobs": body["jobs"], "1h": {figure: hour[figure] for figure in HOUR_FIGURES}}


async def _until_totals_match(chaos: Chaos, url: str, *, deadline_s: float = 60.0) -> tuple[float | None, Any, Any]:
    """When (epoch seconds) the monitor first showed PostgreSQL's totals; None if not within the deadline."""
    shown: Any = None
    truth: Any = None

    async def matched() -> float | None:
        nonlocal shown, truth
        with contextlib.suppress(AssertionError, aiohttp.ClientError, TimeoutError):
            truth, shown = await _truth(chaos), _shown(await _admin_health(url))
            return time.time() if shown == truth else None
        return None  # the monitor is not answering yet

    with contextlib.suppress(TimedOut):  # the verdict reports it, with what was shown
        return await poll(matched, within=deadline_s, every=0.5, what="the monitor's totals"), shown, truth
    return None, shown, truth


async def test_monitor_killed_and_restarted(chaos: Chaos, jobs: int) -> None:
    """13. Monitor killed and restarted (its totals recover)."""
    await chaos.start(workers=2)
    chaos.submit(jobs, over_s=chaos.size.scaled(6, 30))
    await chaos.finished_at_least(jobs // 3)
    chaos.fault("SIGKILL monitor")
    chaos.stack.kill("monitor")
    await asyncio.sleep(3)  # events pile up in the monitor's own bounded queue meanwhile
    monitor = chaos.stack.respawn("monitor")
    await wait_http(monitor, healthy=False)
    restarted = time.time()
    chaos.fault_over("monitor restarted", at=restarted)
    # The first moment the restarted monitor agrees with PostgreSQL, load or not, is when it recovered ...
    caught_up = asyncio.create_task(_until_totals_match(chaos, monitor.url, deadline_s=120))
    await chaos.drain()
    first_match, _, _ = await caught_up
    # ... and once the load has drained it must agree for good.
    matched_at, shown, truth = await _until_totals_match(chaos, monitor.url)
    await chaos.finish()
    chaos.result.recover_s = None if first_match is None else round(first_match - restarted, 2)
    chaos.expect(matched_at is not None, f"the monitor's totals never recovered: shows {shown}, truth {truth}")
    chaos.result.notes["monitor_totals"] = {"shown": shown, "truth": truth}
    chaos.note("recovery = restart until /admin/health totals equal PostgreSQL's")
    chaos.conclude()
