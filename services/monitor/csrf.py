"""CSRF defence for the admin POSTs: browsers replay Basic credentials cross-site, so they are not enough.

A state-changing request must carry a token only an authenticated page can read (an HMAC bound to the
admin credentials, so it changes when the password does), and, when a browser says where it comes
from (Origin, else Referer), come from this same host.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web

HEADER = "X-CSRF-Token"
FIELD = "csrf_token"


def token_for(username: str, password: str) -> str:
    return hmac.new(password.encode(), f"luster-csrf:v1:{username}".encode(), hashlib.sha256).hexdigest()


def _source(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin
    return request.headers.get("Referer")


def same_origin(request: web.Request) -> bool:
    """True unless the browser names another origin (or the opaque "null" one)."""
    source = _source(request)
    if source is None:
        return True  # not a browser: curl and scripts send no Origin, and need the token all the same
    return urlsplit(source).netloc.lower() == request.host.lower()


async def presented_token(request: web.Request) -> str:
    if HEADER in request.headers:
        return request.headers[HEADER]
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get(FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def problem(request: web.Request, expected: str) -> str | None:
    """Why this POST must be refused, or None when it passes."""
    if not same_origin(request):
        return "cross-origin request refused"
    if not hmac.compare_digest((await presented_token(request)).encode(), expected.encode()):
        return f"missing or wrong CSRF token (send the {HEADER} header the dashboard page carries)"
    return None
