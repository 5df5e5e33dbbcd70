"""HTTP edges: domain errors become JSON 4xx, and every request gets one canonical log line."""

from __future__ import annotations

import time

import sentry_sdk
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from shared.db import DATABASE_DOWN_ERRORS
from shared.errors import (
    Conflict,
    DependencyUnavailable,
    InputError,
    InvalidField,
    LusterError,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    UnsupportedImage,
)

log = structlog.get_logger()

STATUS_OF: dict[type[LusterError], int] = {
    MalformedBody: 400,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedImage: 415,
    InvalidField: 422,
    InputError: 400,
    DependencyUnavailable: 503,
}
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error: dict[str, str] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return web.json_response({"error": error}, status=status)


def _status_of(error: LusterError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LusterError as error:
        return error_response(_status_of(error), error.code, error.message, error.field)
    except DATABASE_DOWN_ERRORS as error:
        log.warning("request.database_down", path=request.path, error=repr(error))
        return error_response(503, DependencyUnavailable.code, "the database is unavailable; retry shortly")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return error_response(error.status, HTTP_CODES.get(error.status, "http_error"), error.reason)
    except Exception as error:
        log.exception("request.crashed", path=request.path)
        sentry_sdk.capture_exception(error)  # this middleware answers, so Sentry's own hook never sees it
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


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
