"""The paid engine's spend against its daily cap (dashboard JSON, /metrics, the 80 % alert) and the jobs the
structure guard flagged, read from the real PostgreSQL by the real monitor."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.alerting.rules import Observation, PaidEngineSpend
from services.monitor.settings import MonitorSettings
from shared import spend
from tests.conftest import Client
from tests.harness.monitor import ADMIN, MonitorFactory, admin_json
from tests.harness.poll import poll

NOW = 1_800_000_000.0
PUBLIC_HEALTH_KEYS = {"status", "services", "workers", "queue", "checked_at"}


def spent(today: str | None) -> Observation:
    return Observation(
        at=NOW,
        dependencies={"database": True, "broker": True},
        queue_depth=0,
        jobs_waiting=0,
        estimated_active=1,
        stats=Aggregator().snapshot(NOW),
        spend_today=None if today is None else Decimal(today),
    )


@pytest.mark.parametrize(
    ("today", "severities"),
    [("7.99", []), ("8.00", ["warning"]), ("9.99", ["warning"]), ("10.00", ["warning", "critical"])],
)
def test_spend_warns_at_80_percent_and_is_critical_at_the_cap(today: str, severities: list[str]) -> None:
    findings = PaidEngineSpend(Decimal("10")).evaluate(spent(today))
    assert [finding.severity for finding in findings] == severities
    assert [finding.key for finding in findings] == [f"paid_engine_spend:{s}" for s in severities]
    for finding in findings:
        assert f"${Decimal(today):.2f}" in finding.summary and "$10.00 daily cap" in finding.summary


def test_no_cap_or_no_reading_finds_nothing() -> None:
    assert PaidEngineSpend(None).evaluate(spent("1000")) == []
    assert PaidEngineSpend(Decimal("10")).evaluate(spent(None)) == []


# ---- against PostgreSQL and the running monitor --------------------------------------------------------


async def overview_spend(monitor: Client, today: Decimal) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        body: dict[str, Any] = (await admin_json(monitor, "/admin/api/overview"))["spend"] or {}
        return body if body and Decimal(body["today_usd"]) == today else {}

    return await poll(read, what=f"the dashboard to show ${today} spent today")


async def firing(monitor: Client) -> list[str]:
    active = (await admin_json(monitor, "/admin/alerts"))["active"]
    return sorted(alert["severity"] for alert in active if alert["rule"] == "paid_engine_spend")


async def both_fire(monitor: Client) -> bool:
    return await firing(monitor) == ["critical", "warning"]


async def metrics(monitor: Client) -> str:
    response = await monitor.get("/metrics", headers=ADMIN)
    assert response.status == 200
    return await response.text()


@pytest.mark.integration
async def test_spend_on_the_dashboard_metrics_and_alerts(pool: asyncpg.Pool, monitor_factory: MonitorFactory) -> None:
    today: date = await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    yesterday = today - timedelta(days=1)
    await pool.execute("INSERT INTO engine_spend (day, spent_usd) VALUES ($1, 3)", yesterday)
    await spend.settle(pool, None, Decimal("8.5"))
    monitor = await monitor_factory(openai_daily_budget_usd=Decimal("10"))

    body = await overview_spend(monitor, Decimal("8.5"))
    month = Decimal("11.5") if yesterday.month == today.month else Decimal("8.5")
    assert Decimal(body["month_usd"]) == month
    assert Decimal(body["daily_budget_usd"]) == 10
    assert body["share_of_budget"] == pytest.approx(0.85) and body["status"] == "approaching"
    assert (await admin_json(monitor, "/admin/health"))["spend"]["status"] == "approaching"
    assert await poll(lambda: firing(monitor), what="the spend warning") == ["warning"]
    [alert] = [a for a in (await admin_json(monitor, "/admin/alerts"))["active"] if a["rule"] == "paid_engine_spend"]
    assert "$8.50 is 85.0% of the $10.00 daily cap" in alert["summary"]

    text = await metrics(monitor)
    assert 'luster_paid_engine_spend_usd{period="today"} 8.5' in text
    assert f'luster_paid_engine_spend_usd{{period="month"}} {float(month)}' in text
    assert "luster_paid_engine_daily_budget_usd 10.0" in text
    assert 'luster_alerts_firing{rule="paid_engine_spend"} 1.0' in text

    # A warning degrades the public health, never fails it; its shape stays the guide's.
    response = await monitor.get("/health")
    health = await response.json()
    assert response.status == 200 and set(health) == PUBLIC_HEALTH_KEYS and health["status"] == "degraded"

    await spend.settle(pool, None, Decimal("1.5"))
    assert await poll(lambda: both_fire(monitor), what="the critical spend alert beside the warning")
    assert (await overview_spend(monitor, Decimal("10")))["status"] == "over"
    assert (await monitor.get("/health")).status == 200


@pytest.mark.integration
async def test_without_a_cap_spend_shows_and_nothing_alerts(
    pool: asyncpg.Pool, monitor_factory: MonitorFactory
) -> None:
    await spend.settle(pool, None, Decimal("123.45"))
    monitor = await monitor_factory()
    body = await overview_spend(monitor, Decimal("123.45"))
    assert body["daily_budget_usd"] is None and body["share_of_budget"] is None and body["status"] == "no_cap"
    assert await firing(monitor) == []
    text = await metrics(monitor)
    assert 'luster_paid_engine_spend_usd{period="today"} 123.45' in text
    assert "luster_paid_engine_daily_budget_usd" not in text
    assert (await (await monitor.get("/health")).json())["status"] == "healthy"


# ---- flagged jobs --------------------------------------------------------------------------------------


async def insert_job(pool: asyncpg.Pool, *, updated_at: datetime, flagged: bool, status: str) -> uuid.UUID:
    asset_id, job_id = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO assets (id, filename, content_type, size_bytes, width, height, sha256, storage_key)
               VALUES ($1, 'house.jpg', 'image/jpeg', 1, 1, 1, $2, $3)""",
            asset_id,
            hashlib.sha256(asset_id.bytes).hexdigest(),
            f"{asset_id}.jpg",
        )
        await connection.execute(
            """INSERT INTO jobs (id, asset_id, prompt, tier, style, status, engine, created_at, updated_at)
               VALUES ($1, $2, 'enhance', 'premium', 'default', $3, 'openai', $4, $4)""",
            job_id,
            asset_id,
            status,
            updated_at,
        )
        if flagged:
            await connection.execute("UPDATE jobs SET flagged = true, structure_score = 0.42 WHERE id = $1", job_id)
    return job_id


@pytest.mark.integration
async def test_flagged_jobs_newest_first_without_the_unflagged(pool: asyncpg.Pool, monitor: Client) -> None:
    now: datetime = await pool.fetchval("SELECT now()")
    statuses = ("succeeded", "failed", "succeeded")
    flagged = [
        await insert_job(pool, updated_at=now - timedelta(minutes=10 - i), flagged=True, status=status)
        for i, status in enumerate(statuses)
    ]
    clean = await insert_job(pool, updated_at=now, flagged=False, status="succeeded")

    body = await admin_json(monitor, "/admin/jobs/flagged")
    assert [job["id"] for job in body["jobs"]] == [str(job_id) for job_id in reversed(flagged)]
    assert str(clean) not in {job["id"] for job in body["jobs"]}
    newest = body["jobs"][0]
    assert newest["structure_score"] == pytest.approx(0.42)
    assert (newest["status"], newest["engine"], newest["tier"]) == ("succeeded", "openai", "premium")
    assert body["jobs"][1]["status"] == "failed"  # a flagged job may have failed too
    assert len((await admin_json(monitor, "/admin/jobs/flagged?limit=2"))["jobs"]) == 2
    assert (await monitor.get("/admin/jobs/flagged?limit=51", headers=ADMIN)).status == 422

    async def counted() -> bool:
        return bool((await admin_json(monitor, "/admin/api/overview"))["flagged_jobs"] == 3)

    await poll(counted, what="the dashboard's count of flagged jobs")
    assert "luster_jobs_flagged 3.0" in await metrics(monitor)


@pytest.mark.integration
async def test_strangers_get_401_on_the_flagged_jobs(monitor: Client) -> None:
    response = await monitor.get("/admin/jobs/flagged")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


def test_a_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_DAILY_BUDGET_USD", "25.50")
    assert MonitorSettings().openai_daily_budget_usd == Decimal("25.50")
