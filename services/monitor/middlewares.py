"""HTTP edges: domain errors become JSON 4xx, admin pages get strict headers, one log line per request."""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from shared.errors import Conflict, DependencyUnavailable, InputError, InvalidField, LusterError, NotFound

log = structlog.get_logger()

STATUS_OF: dict[type[LusterError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidField: 422,
    InputError: 400,
    DependencyUnavailable: 503,
}
HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
# The dashboard loads only its own script and style, and no other site may frame it.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def error_response(
    status: int, code: str, message: str, field: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    error = {"code": code, "message": message} | ({"field": field} if field is not None else {})
    return web.json_response({"error": error}, status=status, headers=headers)


def _status_of(error: LusterError) -> int:
    return next((STATUS_OF[cls] for cls in type(error).__mro__ if cls in STATUS_OF), 500)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LusterError as error:
        return error_response(_status_of(error), error.code, error.message, error.field)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(error.status, HTTP_CODES.get(error.status, "http_error"), error.reason)
    except Exception:
        log.exception("request.crashed", path=request.path)
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/admin") or request.path in ("/health", "/metrics"):
        response.headers.setdefault("Cache-Control", "no-store")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        log.info(
            "http.request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
