"""The admin login: HTTP Basic against ADMIN_PASSWORD, failed attempts throttled per client and per
user name, a CSRF token per session on state-changing requests (see `csrf`).

What is guarded is decided from the route the router resolved — the handler that will run — not by
matching the path a second time: a percent-encoded newline once matched the router's `{key}` while a
guard's pattern stopped at it. Every route is guarded unless it is declared public.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web
from aiohttp.typedefs import Handler

from services.monitor import keys
from services.monitor.admin import csrf
from services.monitor.settings import MonitorSettings
from shared.http.json_errors import error_response

PUBLIC_ROUTES = frozenset({"/health"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = {"WWW-Authenticate": 'Basic realm="luster-admin", charset="UTF-8"'}
Networks = Sequence[IPv4Network | IPv6Network]


def guarded(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical not in PUBLIC_ROUTES
    # Nothing routed (404, 405): unknown admin paths answer as known ones do, so probing tells nothing.
    path = request.path
    return path in ("/admin", "/metrics") or path.startswith("/admin/")


def _is_proxy(address: str, proxies: Networks) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in proxies)


def client_of(request: web.Request, *, trusted_proxies: Networks) -> str:
    """The address to throttle. X-Forwarded-For counts only when a trusted proxy sent the request, and
    is read from the right: the first hop that is not one of our proxies is the client (what lies left
    of it, the client wrote itself)."""
    peer = request.remote or "unknown"
    if not _is_proxy(peer, trusted_proxies):
        return peer
    forwarded = ",".join(request.headers.getall("X-Forwarded-For", []))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_proxy(hop, trusted_proxies):
            return hop[:100]
    return hops[0][:100] if hops else peer


def over_https(request: web.Request, *, trusted_proxies: Networks) -> bool:
    """TLS to us, or to a trusted proxy that says so (Railway ends TLS at its edge)."""
    if request.secure:
        return True
    if not _is_proxy(request.remote or "", trusted_proxies):
        return False
    return request.headers.get("X-Forwarded-Proto", "").partition(",")[0].strip().lower() == "https"


def credentials(request: web.Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def is_admin(settings: MonitorSettings, username: str, password: str) -> bool:
    """Both compared in constant time (on digests, so not even the length leaks), and both always
    compared: timing tells nothing about which one was wrong."""
    assert settings.admin_password is not None
    user_ok = hmac.compare_digest(_digest(username), _digest(settings.admin_username))
    password_ok = hmac.compare_digest(_digest(password), _digest(settings.admin_password.get_secret_value()))
    return user_ok & password_ok


def _too_many(wait: float) -> web.Response:
    return error_response(
        429,
        "too_many_attempts",
        f"too many failed logins; try again in {wait:.0f} s",
        headers={"Retry-After": str(max(int(wait), 1))},
    )


async def _authenticate(request: web.Request, settings: MonitorSettings) -> web.Response | None:
    """None when the request may go on; otherwise the refusal."""
    throttle = request.app[keys.THROTTLE]
    client, now = client_of(request, trusted_proxies=settings.trusted_proxies), time.monotonic()
    given = credentials(request)
    user = given[0][:200] if given is not None else None
    if (wait := throttle.retry_after(client, user, now)) is not None:
        return _too_many(wait)
    if given is None or not is_admin(settings, *given):
        if given is not None:  # a browser's first, credential-less request is not a guess
            throttle.failed(client, user, now)
        return error_response(401, "unauthorized", "admin credentials required", headers=CHALLENGE)
    throttle.succeeded(client)
    return None


def session_of(request: web.Request) -> csrf.Session | None:
    return request.app[keys.SESSIONS].get(request.cookies.get(csrf.COOKIE), time.monotonic())


def login_session(request: web.Request) -> tuple[csrf.Session, bool]:
    """The authenticated client's session, or a new one (True) when it brings none that is live."""
    session = session_of(request)
    if session is not None:
        return session, False
    return request.app[keys.SESSIONS].start(time.monotonic()), True


@web.middleware
async def admin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not guarded(request):
        return await handler(request)
    settings = request.app[keys.SETTINGS]
    if settings.admin_password is None:
        return error_response(503, "admin_disabled", "admin routes are disabled: set ADMIN_PASSWORD to enable them")
    if (refusal := await _authenticate(request, settings)) is not None:
        return refusal
    if request.method not in SAFE_METHODS and (problem := await csrf.problem(request, session_of(request))):
        return error_response(403, "csrf_failed", problem)
    return await handler(request)
