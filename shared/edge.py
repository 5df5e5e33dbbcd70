"""What every Luster HTTP service shares at its edge: JSON errors, one log line per request,
the PostgreSQL and RabbitMQ cleanup contexts, and serving until SIGTERM."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from http import HTTPStatus
from typing import TypeVar

import asyncpg
import sentry_sdk
import structlog
from aiohttp import web, web_server
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from shared.broker import Broker
from shared.db import DATABASE_DOWN_ERRORS, create_pool
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
    TooManyRequests,
    Unauthenticated,
    UnsupportedMediaType,
)
from shared.settings import BaseServiceSettings, HttpServiceSettings, load_settings
from shared.telemetry.logs import configure_logging
from shared.telemetry.redaction import secret_values
from shared.telemetry.setup import setup_telemetry
from shared.topology import Topology

log = structlog.get_logger()

POOL = web.AppKey("pool", asyncpg.Pool)
BROKER = web.AppKey("broker", Broker)

STATUS_OF: dict[type[LusterError], int] = {
    MalformedBody: 400,
    NotFound: 404,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    TooManyRequests: 429,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
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
# aiohttp's parser limits, told apart by value: its LineTooLong names only the limit it hit, so a request
# line over 8192 bytes (414) and a header field over 8190 (431) are distinguishable. Pass as handler_args.
PARSER_LIMITS: dict[str, int] = {"max_line_size": 8192, "max_field_size": 8190, "max_headers": 64}
# What an HTTP field value may hold (RFC 9110: visible characters, space, tab; no C0 or C1 controls).
# Bytes that are not UTF-8 arrive as lone surrogates, which no database, log line or header can carry.
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\xa0-\ud7ff\ue000-\U0010ffff]*")
# C0 controls and DEL, as the path decodes: no route takes them, and a percent-encoded newline once
# walked past a guard whose pattern stopped at it while the router's did not.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
CleanupContext = Callable[[web.Application], AsyncIterator[None]]
SettingsT = TypeVar("SettingsT", bound=HttpServiceSettings)


def error_response(
    status: int, code: str, message: str, field: str | None = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    error = {"code": code, "message": message} | ({"field": field} if field is not None else {})
    return web.json_response({"error": error}, status=status, headers=headers)


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
        log.warning("request.database_down", path=request.path, error=repr(error))
        return error_response(503, DependencyUnavailable.code, "the database is unavailable; retry shortly")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _http_error(error)
    except (RequestPayloadError, HttpProcessingError):  # aiohttp's parser on a body it could not frame
        return _closing(error_response(400, "malformed_request", "the request body is not valid HTTP framing"))
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
    return _closing(response) if error.status in (408, 413) else response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "the request was refused"


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


def valid_headers(rules: Mapping[str, re.Pattern[str]]) -> Middleware:
    """A middleware refusing header values that are not text (400), and values of `rules`' headers that
    do not match their pattern whole (422 naming the header), before any handler reads them."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        for name, value in request.headers.items():
            if not FIELD_VALUE.fullmatch(value):
                raise MalformedBody(f"header {name} is not valid text", field=name, code="invalid_header")
        for name, pattern in rules.items():
            sent = request.headers.get(name)
            if sent is not None and not pattern.fullmatch(sent):
                raise InvalidField(f"{name} has characters or a length it may not have", field=name)
        return await handler(request)

    return check


class JsonProtocolErrors(RequestHandler):
    """aiohttp's connection handler, answering what its HTTP parser refuses in our JSON error shape.

    A request line or header the parser cannot take never reaches the application or its middleware:
    aiohttp answers it itself, as plain text. This subclass is the only place that answer can change.
    """

    __slots__ = ()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp does: an answer has begun, the connection is broken
            raise ConnectionError("response already started; cannot answer with an error")
        status, code, text = self._describe(status, exc)
        # Client mistakes are routine on the internet: a debug line, not an error with a traceback (and so
        # not a Sentry event); anything else is ours.
        if status < 500:
            log.debug("http.protocol_error", status=status, error=type(exc).__name__)
        else:
            log.error("http.protocol_crash", status=status, error=repr(exc))
        return _closing(error_response(status, code, text))

    def _describe(self, status: int, exc: BaseException | None) -> tuple[int, str, str]:
        if isinstance(exc, LineTooLong):
            if exc.args[1] == self.max_line_size != self.max_field_size:
                return 414, "uri_too_long", f"the request line is longer than {self.max_line_size} bytes"
            return 431, "header_too_large", f"a header is longer than {self.max_field_size} bytes"
        if isinstance(exc, HttpProcessingError) and "Too many headers" in exc.message:
            return 431, "too_many_headers", f"the request has more than {self.max_headers} headers"
        if isinstance(exc, BadHttpMethod):
            return 400, "malformed_request", "the request method is not a valid HTTP token"
        if status < 500:
            return 400, "malformed_request", "the request is not valid HTTP/1.1"
        return status, "internal_error", "something went wrong on our side; it has been logged"


def answer_protocol_errors_in_json() -> None:
    """Make every aiohttp server of this process answer parser errors with JSON (idempotent).

    aiohttp builds its connection handler by this module-level name and offers no other hook.
    """
    web_server.RequestHandler = JsonProtocolErrors  # type: ignore[attr-defined]  # the one seam aiohttp has


@web.middleware
async def clean_path(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a path with control characters before any guard, route or handler reads it."""
    if CONTROL_CHARACTERS.search(request.path):
        return error_response(400, "invalid_path", "the path contains control characters")
    return await handler(request)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one canonical line per request, with its outcome and duration."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        log.info("http.request", method=request.method, path=request.path, status=status, duration_ms=duration_ms)


def database(settings: BaseServiceSettings) -> CleanupContext:
    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await create_pool(
            str(settings.database_url.get_secret_value()),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            startup_timeout=settings.startup_timeout,
        )
        yield
        await app[POOL].close()

    return pool


def broker(settings: BaseServiceSettings, *, name: str) -> CleanupContext:
    async def connection(app: web.Application) -> AsyncIterator[None]:
        app[BROKER] = await Broker.connect(
            str(settings.amqp_url.get_secret_value()),
            Topology(settings.broker_prefix),
            name=name,
            startup_timeout=settings.startup_timeout,
        )
        yield
        await app[BROKER].close()

    return connection


def serve(service: str, settings_class: type[SettingsT], create_app: Callable[[SettingsT], web.Application]) -> None:
    """Load settings, set up logs and telemetry, and serve until SIGTERM or SIGINT.

    run_app handles both signals: it stops accepting, drains requests, then runs the cleanup contexts.
    """
    settings = load_settings(settings_class)
    configure_logging(service, settings.log_level, secrets=secret_values(settings))
    telemetry = setup_telemetry(service, settings)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=None,
            shutdown_timeout=15,
            print=None,
        )
    except DependencyUnavailable as error:  # a dependency that never answered at start-up
        sys.exit(f"luster-{service}: {error.message}")
    finally:
        telemetry.shutdown()
