"""Admin access over real HTTP: Basic auth with a 401 challenge, refusal without a password, throttling, CSRF."""

from __future__ import annotations

import re

import aiohttp
import asyncpg
import pytest

from tests.monitor.conftest import ADMIN, Client, MonitorFactory, admin_json
from tests.monitor.seed import seed_hour

pytestmark = pytest.mark.integration

ADMIN_PATHS = (
    "/admin/health",
    "/admin/dashboard",
    "/admin/api/overview",
    "/admin/jobs",
    "/admin/queues",
    "/admin/alerts",
    "/admin/static/dashboard.js",
    "/metrics",
)
WRONG = {"Authorization": aiohttp.encode_basic_auth("admin", "not the password")}
PURGE = "/admin/queues/dead-letters/purge"


async def test_health_is_public(monitor: Client) -> None:
    response = await monitor.get("/health")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("headers", [{}, WRONG], ids=["missing", "wrong"])
async def test_admin_routes_challenge_without_the_right_credentials(
    monitor_factory: MonitorFactory, headers: dict[str, str]
) -> None:
    monitor = await monitor_factory(auth_max_failures=100)
    for path in ADMIN_PATHS:
        response = await monitor.get(path, headers=headers)
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="luster-admin"'), path
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert (await monitor.get("/admin/health", headers=ADMIN)).status == 200


async def test_without_a_password_admin_refuses_never_opens(monitor_factory: MonitorFactory) -> None:
    monitor = await monitor_factory(admin_password=None)
    for headers in ({}, ADMIN):
        response = await monitor.get("/admin/dashboard", headers=headers)
        assert response.status == 503
        body = await response.json()
        assert body["error"]["code"] == "admin_disabled"
        assert "ADMIN_PASSWORD" in body["error"]["message"]
    assert (await monitor.get("/health")).status == 200


async def test_failed_logins_are_throttled_per_client(monitor_factory: MonitorFactory) -> None:
    monitor = await monitor_factory(auth_max_failures=3, auth_lockout_seconds=60)
    for _ in range(3):
        assert (await monitor.get("/admin/health", headers=WRONG)).status == 401
    locked = await monitor.get("/admin/health", headers=ADMIN)  # even the right password waits
    assert locked.status == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert (await monitor.get("/health")).status == 200


async def _token(monitor: Client) -> str:
    page = await (await monitor.get("/admin/dashboard", headers=ADMIN)).text()
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page)
    assert found, page[:500]
    return found.group(1)


async def test_posts_need_the_csrf_token_and_the_same_origin(monitor: Client) -> None:
    token = await _token(monitor)
    refused = await monitor.post(PURGE, headers=ADMIN)
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf_failed"
    assert (await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": "0" * 64})).status == 403
    cross_site = {**ADMIN, "X-CSRF-Token": token, "Origin": "https://evil.example"}
    assert (await monitor.post(PURGE, headers=cross_site)).status == 403
    same_site = {**ADMIN, "X-CSRF-Token": token, "Origin": str(monitor.make_url("")).rstrip("/")}
    accepted = await monitor.post(PURGE, headers=same_site)
    assert accepted.status == 200, await accepted.text()
    assert await accepted.json() == {"purged": 0}
    form = await monitor.post(PURGE, headers=ADMIN, data={"csrf_token": token})
    assert form.status == 200


async def test_the_dashboard_page_is_locked_down(monitor: Client) -> None:
    response = await monitor.get("/admin/dashboard", headers=ADMIN)
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert (await monitor.get("/admin/static/nope.js", headers=ADMIN)).status == 404
    redirect = await monitor.get("/admin", headers=ADMIN, allow_redirects=False)
    assert (redirect.status, redirect.headers["Location"]) == (302, "/admin/dashboard")


async def test_recent_jobs_filter_and_page(pool: asyncpg.Pool, monitor: Client) -> None:
    await seed_hour(pool)
    first = await admin_json(monitor, "/admin/jobs?status=failed&limit=4")
    assert [job["status"] for job in first["jobs"]] == ["failed"] * 4
    assert first["jobs"][0]["error_code"] == "engine_timeout"
    second = await admin_json(monitor, f"/admin/jobs?status=failed&limit=4&cursor={first['next_cursor']}")
    assert len(second["jobs"]) == 2 and second["next_cursor"] is None
    assert not {job["id"] for job in first["jobs"]} & {job["id"] for job in second["jobs"]}
    premium = await admin_json(monitor, "/admin/jobs?tier=premium&limit=100")
    assert len(premium["jobs"]) == 20 and {job["tier"] for job in premium["jobs"]} == {"premium"}
    assert premium["jobs"][0]["created_at"] > premium["jobs"][-1]["created_at"]
    for bad in ("limit=1000", "status=lost", "tier=gold", "cursor=%%%", "colour=red"):
        response = await monitor.get(f"/admin/jobs?{bad}", headers=ADMIN)
        assert response.status == 422, bad
