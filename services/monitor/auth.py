"""Admin access: HTTP Basic against ADMIN_PASSWORD, failed attempts throttled per client, CSRF on POSTs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from services.monitor import csrf, keys
from services.monitor.settings import MonitorSettings
from shared.edge import error_response

PROTECTED = re.compile(r"^/(admin(/.*)?|metrics)$")
CHALLENGE = {"WWW-Authenticate": 'Basic realm="luster-admin", charset="UTF-8"'}


def client_of(request: web.Request, *, trust_forwarded_for: bool) -> str:
    """The address to throttle; behind one trusted proxy, the one it appended last to X-Forwarded-For."""
    forwarded = request.headers.get("X-Forwarded-For", "") if trust_forwarded_for else ""
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-1] if hops else (request.remote or "unknown")


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


def csrf_token(settings: MonitorSettings) -> str:
    assert settings.admin_password is not None
    return csrf.token_for(settings.admin_username, settings.admin_password.get_secret_value())


async def _authenticate(request: web.Request, settings: MonitorSettings) -> web.Response | None:
    """None when the request may go on; otherwise the refusal."""
    throttle = request.app[keys.THROTTLE]
    client, now = client_of(request, trust_forwarded_for=settings.trust_forwarded_for), time.monotonic()
    if (wait := throttle.retry_after(client, now)) is not None:
        return error_response(
            429,
            "too_many_attempts",
            f"too many failed logins; try again in {wait:.0f} s",
            headers={"Retry-After": str(max(int(wait), 1))},
        )
    given = credentials(request)
    if given is None or not is_admin(settings, *given):
        if given is not None:  # a browser's first, credential-less request is not a guess
            throttle.failed(client, now)
        return error_response(401, "unauthorized", "admin credentials required", headers=CHALLENGE)
    throttle.succeeded(client)
    return None


@web.middleware
async def admin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not PROTECTED.match(request.path):
        return await handler(request)
    settings = request.app[keys.SETTINGS]
    if settings.admin_password is None:
        return error_response(503, "admin_disabled", "admin routes are disabled: set ADMIN_PASSWORD to enable them")
    if (refusal := await _authenticate(request, settings)) is not None:
        return refusal
    if request.method == "POST" and (problem := await csrf.problem(request, csrf_token(settings))) is not None:
        return error_response(403, "csrf_failed", problem)
    return await handler(request)
