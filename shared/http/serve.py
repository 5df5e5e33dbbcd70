"""An HTTP service's process: settings, logs and telemetry set up once, then serving until SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import uvloop
from aiohttp import web

from shared.errors import DependencyUnavailable
from shared.settings import HttpServiceSettings, load_settings
from shared.telemetry.logs import configure_logging
from shared.telemetry.redaction import secret_values
from shared.telemetry.setup import setup_telemetry

SettingsT = TypeVar("SettingsT", bound=HttpServiceSettings)


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
            # libuv's event loop: transports and callbacks in C, less CPU per request and message (bench/ingest.py).
            loop=uvloop.new_event_loop(),
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
