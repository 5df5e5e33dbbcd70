"""CSRF defence for the admin POSTs: browsers replay Basic credentials cross-site, so they are not enough.

A state-changing request must carry the token of its session (the synchronizer-token pattern) and,
when a browser says where it comes from (Origin, else Referer), come from this same host. A session
starts when an authenticated client without one loads the dashboard page (its login): a new random
id in an HttpOnly, SameSite=Strict cookie, naming a new random token. So tokens differ per session,
a session id a client brings is never adopted, and a token rotates with every login and every
`ADMIN_SESSION_SECONDS`. Sessions live in this process's memory: the monitor is one instance, and a
restart only means the dashboard's next POST asks for a reload.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

HEADER = "X-CSRF-Token"
FIELD = "csrf_token"
COOKIE = "luster_admin_session"


@dataclass(frozen=True)
class Session:
    id: str
    token: str
    expires_at: float


class Sessions:
    """Live admin sessions by id, oldest first; at most `capacity` (about 200 bytes each)."""

    def __init__(self, lifetime_s: float, *, capacity: int = 1000) -> None:
        self.lifetime_s = lifetime_s
        self.capacity = capacity
        self._live: OrderedDict[str, Session] = OrderedDict()

    @property
    def live(self) -> int:
        """Sessions held: at most `capacity`."""
        return len(self._live)

    def get(self, session_id: str | None, now: float) -> Session | None:
        session = self._live.get(session_id) if session_id else None
        if session is not None and session.expires_at <= now:
            del self._live[session.id]
            return None
        return session

    def start(self, now: float) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_hex(32), now + self.lifetime_s)
        self._live[session.id] = session
        while len(self._live) > self.capacity:
            self._live.popitem(last=False)
        return session


def set_cookie(response: web.StreamResponse, session: Session, *, secure: bool) -> None:
    response.set_cookie(COOKIE, session.id, path="/admin", httponly=True, samesite="Strict", secure=secure)


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


async def problem(request: web.Request, session: Session | None) -> str | None:
    """Why this state-changing request must be refused, or None when it passes."""
    if not same_origin(request):
        return "cross-origin request refused"
    if session is None:
        return "no admin session: load /admin/dashboard (keeping its cookie) for a CSRF token"
    if not hmac.compare_digest((await presented_token(request)).encode(), session.token.encode()):
        return f"missing or wrong CSRF token (send the {HEADER} header the dashboard page carries)"
    return None
