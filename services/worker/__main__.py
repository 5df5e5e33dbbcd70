"""`python -m services.worker`: load settings, set up telemetry, work until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop

from services.worker.faults import Faults
from services.worker.runner import run
from services.worker.settings import WorkerSettings
from shared.errors import DependencyUnavailable
from shared.settings import load_settings
from shared.telemetry.logs import configure_logging
from shared.telemetry.redaction import secret_values
from shared.telemetry.setup import setup_telemetry


async def _serve(settings: WorkerSettings, faults: Faults) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop, faults)


def main() -> None:
    settings = load_settings(WorkerSettings)
    faults = Faults.from_environment()
    configure_logging("worker", settings.log_level, secrets=secret_values(settings))
    telemetry = setup_telemetry("worker", settings, sentry_tags={"worker_id": settings.worker_id})
    try:
        uvloop.run(_serve(settings, faults))  # libuv's loop, as every service runs (shared/http/serve.py)
    except DependencyUnavailable as error:
        sys.exit(f"luster-worker: {error.message}")
    finally:
        telemetry.shutdown()


if __name__ == "__main__":
    main()
