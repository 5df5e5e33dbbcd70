"""Admin access over real HTTP: Basic auth with a 401 challenge, refusal without a password, throttling
per client (behind trusted proxies only) and per user name, CSRF tokens per session."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import Client
from tests.harness.monitor import ADMIN, MonitorFactory, admin_json, csrf_token
from tests.harness.poll import poll
from tests.monitor.seed import seed_hour

pytestmark = pytest.mark.integration

ADMIN_PATHS = (
    "/admin/health",
    "/admin/dashboard",
    "/admin/api/overview",
    "/admin/jobs",
    "/admin/jobs/flagged",
    "/admin/jobs/00000000-0000-0000-0000-000000000000",
    "/admin/queues",
    "/admin/alerts",
    "/admin/static/dashboard.js",
    "/metrics",
)
ADMIN_POSTS = (
    "/admin/queues/dead-letters/requeue",
    "/admin/queues/dead-letters/purge",
    "/admin/queues/dead-letters/some-key/requeue",
    "/admin/keys",
    "/admin/keys/00000000-0000-0000-0000-000000000000/revoke",
    "/admin/jobs/00000000-0000-0000-0000-000000000000/cancel",
    "/admin/jobs/00000000-0000-0000-0000-000000000000/retry",
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


async def test_admin_posts_challenge_strangers_and_need_the_csrf_token(monitor_factory: MonitorFactory) -> None:
    monitor = await monitor_factory(auth_max_failures=100)
    for path in ADMIN_POSTS:
        for headers in ({}, WRONG):
            assert (await monitor.post(path, headers=headers)).status == 401, path
        refused = await monitor.post(path, headers=ADMIN)
        assert refused.status == 403, path
        assert (await refused.json())["error"]["code"] == "csrf_failed", path


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


async def test_posts_need_the_csrf_token_and_the_same_origin(monitor: Client) -> None:
    token = await csrf_token(monitor)
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


def _from(address: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "X-Forwarded-For": address}


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(monitor_factory: MonitorFactory) -> None:
    """No proxies configured: a client rotating X-Forwarded-For is still one client, and locked out."""
    monitor = await monitor_factory(auth_max_failures=3, auth_lockout_seconds=60)
    for n in range(3):
        assert (await monitor.get("/admin/health", headers=_from(f"198.51.100.{n}", WRONG))).status == 401
    assert (await monitor.get("/admin/health", headers=_from("198.51.100.99", ADMIN))).status == 429


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(monitor_factory: MonitorFactory) -> None:
    """The test client connects from 127.0.0.1, here the trusted proxy: each forwarded client counts alone."""
    monitor = await monitor_factory(auth_max_failures=3, auth_lockout_seconds=60, trusted_proxies="127.0.0.0/8")
    for _ in range(3):
        assert (await monitor.get("/admin/health", headers=_from("198.51.100.1", WRONG))).status == 401
    assert (await monitor.get("/admin/health", headers=_from("198.51.100.1", ADMIN))).status == 429
    # What a client writes left of the proxy's own entry changes nothing: the proxy appended the real one.
    spoofed = _from("203.0.113.5, 198.51.100.1", ADMIN)
    assert (await monitor.get("/admin/health", headers=spoofed)).status == 429
    assert (await monitor.get("/admin/health", headers=_from("198.51.100.2", ADMIN))).status == 200


async def test_a_user_name_locks_out_across_client_addresses(monitor_factory: MonitorFactory) -> None:
    monitor = await monitor_factory(
        auth_max_failures=100, auth_max_user_failures=3, auth_lockout_seconds=60, trusted_proxies="127.0.0.1/32"
    )
    for n in range(3):  # one guess each from three addresses: no client is over its own limit
        assert (await monitor.get("/admin/health", headers=_from(f"198.51.100.{n}", WRONG))).status == 401
    locked = await monitor.get("/admin/health", headers=_from("198.51.100.50", ADMIN))
    assert locked.status == 429 and (await locked.json())["error"]["code"] == "too_many_attempts"
    other_name = {"Authorization": aiohttp.encode_basic_auth("operator", "whatever")}
    assert (await monitor.get("/admin/health", headers=_from("198.51.100.50", other_name))).status == 401
    assert (await monitor.get("/health")).status == 200


def _cookie(monitor: Client) -> str | None:
    """The session cookie the server set (the one the test plants has no path)."""
    jar = monitor.session.cookie_jar
    found = [c.value for c in jar if c.key == "luster_admin_session" and c["path"] == "/admin"]
    return found[0] if found else None


async def test_csrf_tokens_are_per_session(monitor: Client, aiohttp_client: Any) -> None:
    first = await csrf_token(monitor)
    assert await csrf_token(monitor) == first  # the same session keeps its token
    cookie = (await monitor.get("/admin/dashboard", headers=ADMIN)).cookies  # no new cookie for a live session
    assert "luster_admin_session" not in cookie
    second_browser = await aiohttp_client(monitor.server)
    second = await csrf_token(second_browser)
    assert second != first
    # A token is good only with its own session's cookie.
    crossed = await second_browser.post(PURGE, headers={**ADMIN, "X-CSRF-Token": first})
    assert crossed.status == 403 and (await crossed.json())["error"]["code"] == "csrf_failed"
    assert (await second_browser.post(PURGE, headers={**ADMIN, "X-CSRF-Token": second})).status == 200
    assert (await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": first})).status == 200


async def test_the_session_cookie_is_locked_down(monitor: Client) -> None:
    response = await monitor.get("/admin/dashboard", headers=ADMIN)
    header = response.headers["Set-Cookie"]
    assert header.startswith("luster_admin_session=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert attribute in header, header
    assert "Secure" not in header  # plain HTTP here; over HTTPS (or a trusted proxy saying so) it is set


async def test_a_token_without_its_session_cookie_is_refused(monitor: Client) -> None:
    token = await csrf_token(monitor)
    monitor.session.cookie_jar.clear()
    refused = await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": token})
    assert refused.status == 403 and "no admin session" in (await refused.json())["error"]["message"]
    monitor.session.cookie_jar.update_cookies({"luster_admin_session": "chosen-by-an-attacker"})
    assert (await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": token})).status == 403


async def test_csrf_token_rotates_after_login(monitor: Client) -> None:
    before, old_session = await csrf_token(monitor), _cookie(monitor)
    # A new login: the browser comes back without its session (closed, or its cookie dropped), or with
    # one the server never issued (a fixation attempt): it never keeps the id it brought.
    monitor.session.cookie_jar.clear()
    monitor.session.cookie_jar.update_cookies({"luster_admin_session": "chosen-by-an-attacker"})
    after, new_session = await csrf_token(monitor), _cookie(monitor)
    assert after != before
    assert new_session not in (None, old_session, "chosen-by-an-attacker")
    assert (await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": before})).status == 403
    assert (await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": after})).status == 200


async def test_csrf_token_rotates_when_the_session_expires(monitor_factory: MonitorFactory) -> None:
    monitor = await monitor_factory(admin_session_seconds=0.3)
    first = await csrf_token(monitor)
    rotated = first

    async def new_token() -> bool:
        nonlocal rotated
        rotated = await csrf_token(monitor)
        return rotated != first

    await poll(new_token, within=10, what="the session to expire and the dashboard to start a new one")
    assert (await monitor.post(PURGE, headers={**ADMIN, "X-CSRF-Token": first})).status == 403
