"""What every Luster HTTP service shares at its edge: JSON errors, one log line per request,
the PostgreSQL and RabbitMQ cleanup contexts, and serving until SIGTERM."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import asyncpg
import sentry_sdk
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from shared.broker import Broker
from shared.db import DATABASE_DOWN_ERRORS, create_pool
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
from shared.logs import configure_logging
from shared.settings import BaseServiceSettings, HttpServiceSettings, load_settings
from shared.telemetry import setup_telemetry
from shared.topology import Topology

log = structlog.get_logger()

POOL = web.AppKey("pool", asyncpg.Pool)
BROKER = web.AppKey("broker", Broker)

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
HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
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
            str(settings.database_url),
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
            str(settings.amqp_url),
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
    configure_logging(service, settings.log_level)
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
