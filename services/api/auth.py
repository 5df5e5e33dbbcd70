"""Who is calling: every endpoint but the public ones needs `Authorization: Bearer lus_…`.

The key is looked up by the SHA-256 of its token on every request, so a revocation takes effect at
once on every api instance; on a limited endpoint the same statement counts the request against the
key's limits, with the other limited requests under way (services/api/keycounter.py). Its last use is
written at most once a minute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp.typedefs import Handler

from services.api import keys
from services.api.caller import Caller
from shared import apikeys
from shared.errors import Unauthenticated

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="luster"'}
LAST_USED_EVERY = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 200


def _token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "send an API key as `Authorization: Bearer lus_…`", field="Authorization", headers=CHALLENGE
        )
    token = token.strip()
    if not token.startswith(apikeys.TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise Unauthenticated("that is not a Luster API key", field="Authorization", headers=CHALLENGE)
    return token


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None or request.match_info.handler in request.app[keys.PUBLIC]:
        return await handler(request)
    if request.method == "OPTIONS":  # a CORS preflight carries no credentials, by the browser's rules
        return await handler(request)
    pool, token = request.app[keys.POOL], _token(request)
    action = request.app[keys.LIMITED].get(request.match_info.handler)
    if action is None:
        key = await apikeys.find_active(pool, token)
    elif found := await request.app[keys.KEY_COUNTER].authenticate_and_count(token, action):
        key, request[keys.ALLOWANCE] = found
    else:
        key = None
    if key is None:
        raise Unauthenticated("this API key is unknown or revoked", field="Authorization", headers=CHALLENGE)
    if key.last_used_at is None or datetime.now(UTC) - key.last_used_at > LAST_USED_EVERY:
        await apikeys.mark_used(pool, key.id)
    request[keys.CALLER] = Caller(key)
    return await handler(request)
