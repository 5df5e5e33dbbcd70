"""Start-up while PostgreSQL does not answer: giving up is one clear line, a SIGTERM is a clean stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.system.processes import Service, free_port, start, wait_for_log

pytestmark = pytest.mark.integration

SERVICES = ("api", "worker", "monitor")


def _start_without_postgresql(name: str, service_env: dict[str, str], log_dir: Path, timeout_s: int) -> Service:
    env = {
        **service_env,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/luster",  # nothing listens there
        "STARTUP_TIMEOUT": str(timeout_s),
        "ADMIN_PASSWORD": "correct horse battery staple",
    }
    return start(name, env, log_dir, port=None if name == "worker" else free_port())


@pytest.mark.parametrize("name", SERVICES)
async def test_giving_up_on_postgresql_is_one_line_naming_it(
    name: str, service_env: dict[str, str], log_dir: Path
) -> None:
    service = _start_without_postgresql(name, service_env, log_dir, timeout_s=1)

    code = await asyncio.to_thread(service.process.wait, 60)

    assert code == 1
    assert f"luster-{name}: postgresql did not answer within 1 s: " in service.log()
    assert "Traceback" not in service.log()


@pytest.mark.parametrize("name", SERVICES)
async def test_sigterm_while_waiting_for_postgresql_stops_at_once_and_cleanly(
    name: str, service_env: dict[str, str], log_dir: Path
) -> None:
    service = _start_without_postgresql(name, service_env, log_dir, timeout_s=120)
    await wait_for_log(service, "dependency.waiting", deadline_s=60)  # signal handlers are in place by then

    asked = time.monotonic()
    code = await asyncio.to_thread(service.stop, 20)

    assert code == 0, service.log()
    assert time.monotonic() - asked < 5
