"""Errors as JSON answers: the domain tree mapped to statuses by type in one place, and aiohttp's own refusals."""

from __future__ import annotations

from http import HTTPStatus

import sentry_sdk
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from shared.db import DATABASE_DOWN_ERRORS
from shared.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    InputError,
    InvalidField,
    LusterError,
    MalformedBody,
    NotFound,
    PayloadTooLarge,
    RangeNotSatisfiable,
    TooManyRequests,
    Unauthenticated,
    UnsupportedMediaType,
)
from shared.telemetry.logs import brief

log = structlog.get_logger()

STATUS_OF: dict[type[LusterError], int] = {
    MalformedBody: 400,
    NotFound: 404,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    TooManyRequests: 429,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RangeNotSatisfiable: 416,
    InvalidField: 422,
    InputError: 400,
    DependencyUnavailable: 503,
}
HTTP_CODES = {
    400: "malformed_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    431: "header_too_large",
}


def error_response(
    status: int, code: str, message: str, field: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    error = {"code": code, "message": message} | ({"field": field} if field is not None else {})
    return web.json_response({"error": error}, status=status, headers=headers)


def closing(response: web.Response) -> web.Response:
    """`response`, after which the connection closes: the rest of what the client sends is not worth reading."""
    response.force_close()
    return response


def _status_of(error: LusterError) -> int:
    return next((STATUS_OF[cls] for cls in type(error).__mro__ if cls in STATUS_OF), 500)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors become JSON 4xx, a database outage 503, anything else a logged 500 without a trace."""
    try:
        return await handler(request)
    except LusterError as error:
        return error_response(_status_of(error), error.code, error.message, error.field, headers=error.headers)
    except DATABASE_DOWN_ERRORS as error:
        log.warning("request.database_down", path=request.path, error=brief(error))
        return error_response(503, DependencyUnavailable.code, "the database is unavailable; retry shortly")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _http_error(error)
    except (RequestPayloadError, HttpProcessingError):  # aiohttp's parser on a body it could not frame
        return closing(error_response(400, "malformed_request", "the request body is not valid HTTP framing"))
    except Exception as error:
        log.exception("request.crashed", path=request.path)
        sentry_sdk.capture_exception(error)  # this middleware answers, so Sentry's own hook never sees it
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


def _http_error(error: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (404, 405, 413 and ours, 408) in the JSON shape, with a fixed message.

    The reason phrase is the standard one, never the exception's text: that may carry client input.
    """
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    response = error_response(
        error.status, HTTP_CODES.get(error.status, "http_error"), _phrase(error.status), headers=headers
    )
    # The unread rest of a too-large or too-slow body is not worth waiting for: close the connection.
    return closing(response) if error.status in (408, 413) else response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "the request was refused"
