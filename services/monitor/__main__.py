"""`python -m services.monitor`: serve the monitor until SIGTERM."""

from __future__ import annotations

from services.monitor.app import create_app
from services.monitor.settings import MonitorSettings
from shared.http.serve import serve


def main() -> None:
    serve("monitor", MonitorSettings, create_app)


if __name__ == "__main__":
    main()
