"""`python -m services.monitor`: load settings, set up telemetry and serve until SIGTERM."""

from __future__ import annotations

from aiohttp import web

from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from shared.logs import configure_logging
from shared.settings import load_settings
from shared.telemetry import setup_telemetry


def main() -> None:
    settings = load_settings(MonitorSettings)
    configure_logging("monitor", settings.log_level)
    telemetry = setup_telemetry("monitor", settings)
    try:
        # run_app handles SIGINT and SIGTERM: it stops accepting, then runs the cleanup contexts.
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=None,
            shutdown_timeout=10,
            print=None,
        )
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
