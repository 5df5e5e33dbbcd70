"""Refusals before any handler reads a request: header values that are not text, paths with control characters."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from shared.errors import InvalidField, MalformedBody
from shared.http.json_errors import error_response

# What an HTTP field value may hold (RFC 9110: visible characters, space, tab; no C0 or C1 controls).
# Bytes that are not UTF-8 arrive as lone surrogates, which no database, log line or header can carry.
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\xa0-\ud7ff\ue000-\U0010ffff]*")
# C0 controls and DEL, as the path decodes: no route takes them, and a percent-encoded newline once
# walked past a guard whose pattern stopped at it while the router's did not.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def valid_headers(rules: Mapping[str, re.Pattern[str]]) -> Middleware:
    """A middleware refusing header values that are not text (400), and values of `rules`' headers that
    do not match their pattern whole (422 naming the header), before any handler reads them; a request
    no route takes gets its 404 or 405."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:  # no route (404, 405): no handler reads them
            return await handler(request)
        for name, value in request.headers.items():
            if not FIELD_VALUE.fullmatch(value):
                raise MalformedBody(f"header {name} is not valid text", field=name, code="invalid_header")
        for name, pattern in rules.items():
            sent = request.headers.get(name)
            if sent is not None and not pattern.fullmatch(sent):
                raise InvalidField(f"{name} has characters or a length it may not have", field=name)
        return await handler(request)

    return check


@web.middleware
async def clean_path(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a path with control characters before any guard, route or handler reads it."""
    if CONTROL_CHARACTERS.search(request.path):
        return error_response(400, "invalid_path", "the path contains control characters")
    return await handler(request)
