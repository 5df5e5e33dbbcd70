"""The dashboard in a real headless Chromium: it renders, agrees with the JSON, draws charts, and updates."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from shared.topology import Topology
from tests.conftest import Client
from tests.harness.monitor import PASSWORD, JobRunner, MonitorFactory, admin_json
from tests.harness.worker import WorkerFactory
from tests.monitor.seed import seed_hour

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# Set to a path (docs/dashboard.png) to keep the screenshot the test takes.
SCREENSHOT_ENV = "LUSTER_DASHBOARD_SCREENSHOT"


async def field(page: Page, name: str) -> str:
    return (await page.locator(f'[data-field="{name}"]').first.inner_text()).strip()


async def test_dashboard_renders_agrees_with_the_json_and_updates(
    pool: asyncpg.Pool,
    monitor_factory: MonitorFactory,
    worker: WorkerFactory,
    run_job: JobRunner,
    browser: Browser,
    tmp_path: Path,
    topology: Topology,
) -> None:
    await seed_hour(pool)
    monitor: Client = await monitor_factory()
    await worker()
    context = await browser.new_context(
        http_credentials={"username": "admin", "password": PASSWORD}, viewport={"width": 1440, "height": 900}
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(str(monitor.make_url("/admin/dashboard")))
    # Locators, not wait_for_function: the page's CSP forbids the eval that one needs.
    await page.wait_for_selector("body[data-renders]")
    await page.wait_for_selector('#health[data-status="healthy"]')
    # The worker's first heartbeat may land after the first render on a busy machine.
    await expect(page.locator('[data-field="workers.estimated_active"]').first).to_have_text("1", timeout=15_000)

    expected = await admin_json(monitor, "/admin/api/overview")
    for status in ("queued", "processing", "succeeded", "failed", "canceled"):
        assert await field(page, f"jobs.{status}") == str(expected["jobs"][status]), status
    assert await field(page, "jobs.succeeded") == "54"
    assert await field(page, "windows.1h.success_rate") == f"{expected['windows']['1h']['success_rate'] * 100:.1f}%"
    assert await field(page, "queues.depth") == str(expected["queues"]["depth"])
    assert await page.locator("#health").get_attribute("class") == "health healthy"
    assert await page.locator("#throughput-chart rect.bar").count() >= 50  # a bar per minute with jobs
    assert await page.locator("#latency-chart path.line").count() == 2
    assert await page.locator("#workers-table tbody tr").count() == 1
    # The api's panel and every process's CPU and memory, from the heartbeats: the jobs above went through
    # an api app of this test's, whose heartbeat the monitor merged.
    await expect(page.locator('[data-field="api.active"]').first).to_have_text("1", timeout=15_000)
    await expect(page.locator("#api-table tbody tr")).to_have_count(4)
    processes = page.locator("#processes-table tbody tr")
    await expect(processes).to_have_count(2)
    await expect(page.locator("#processes-table")).to_contain_text("api")
    await expect(page.locator("#processes-table")).to_contain_text("MB")
    assert "engine_timeout × 6" in await page.locator("#errors").inner_text()
    assert await page.locator("#queues-table tbody tr").count() == len(topology.all_queues())
    await expect(page.locator("#flagged-table")).to_contain_text("no flagged jobs")
    await expect(page.locator('[data-field="spend.budget"]')).to_have_text("no cap")
    assert await field(page, "spend.today") == "$0.00"

    premium = await run_job(tier="premium")
    await expect(page.locator('[data-field="jobs.succeeded"]').first).to_have_text("55", timeout=15_000)
    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    if target := os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, target)

    await page.click('a[data-tab="queues"]')
    await page.wait_for_selector("#dead-table tbody tr")
    assert "empty" in await page.locator("#dead-table").inner_text()
    await page.click('a[data-tab="jobs"]')
    await expect(page.locator("#jobs-table tbody tr")).to_have_count(25)
    job_id = premium["id"]
    await page.click(f'#jobs-table a[href="#jobs/{job_id}"]')
    await expect(page.locator("#job-panel")).to_be_visible()
    await expect(page.locator("#job-timeline tbody tr")).to_have_count(3)
    await expect(page.locator("#job-timeline")).to_contain_text("job.succeeded")
    await expect(page.locator("#job-attempts tbody tr")).to_have_count(1)
    await expect(page.locator('[data-field="job.kind"]')).to_have_text("premium · default")
    assert await page.locator("#job-retry").is_hidden() and await page.locator("#job-cancel").is_hidden()
    assert errors == []
    await context.close()
