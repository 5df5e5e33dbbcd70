"""The environment of a scenario's services: the test's own base plus fast timings."""

from __future__ import annotations

from tests.chaos.size import Size

ADMIN_PASSWORD = "chaos-admin-password"


def chaos_env(base: dict[str, str], size: Size) -> dict[str, str]:
    """Fast heartbeats, sweeps and watchdogs so faults are noticed within seconds, not minutes."""
    return {
        **base,
        "LOG_LEVEL": "INFO",
        "STARTUP_TIMEOUT": "180",
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "5",
        "OUTBOX_RELAY_INTERVAL": "1",
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CONCURRENCY": "2",
        "HEARTBEAT_INTERVAL": "1",
        "SWEEP_INTERVAL": "2",
        "WATCHDOG_INTERVAL": "2",
        "BROKER_GIVE_UP_AFTER": "30",
        "JOB_TIMEOUT": "10",
        "MAX_ATTEMPTS": "3",
        "SHUTDOWN_GRACE": "10",
        "RETRY_DELAY_SCALE": str(size.retry_scale),
    }
