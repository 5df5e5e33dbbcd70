"""Railway's service configs as data, and their commands run as real processes the way Railway runs them."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from shared.db import split_database
from shared.domain import Tier
from shared.healthcheck import health_url, probe
from shared.topology import Topology
from tests.chaos.queues import BrokerProbe
from tests.harness.poll import poll
from tests.system.processes import ROOT as ROOT
from tests.system.processes import Service, free_port, wait_healthy

RAILWAY = ROOT / "deploy" / "railway"
SERVICES = ("api", "worker", "monitor")
HTTP_SERVICES = ("api", "monitor")


def railway_config(name: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((RAILWAY / f"{name}.json").read_text())
    return config


def command_line(command: str | list[str]) -> str:
    # The schema takes preDeployCommand as a string or a one-item list holding the command line.
    return command if isinstance(command, str) else command[0]


def command_argv(command: str | list[str]) -> list[str]:
    """The argv Railway execs for a Dockerfile service: exec form, no shell, so no expansion either."""
    return shlex.split(command_line(command))


@dataclass(frozen=True)
class Release:
    """Where the code runs from and whose `python` the commands find first on PATH, as in the image."""

    app_dir: Path
    bin_dir: Path


def process_env(release: Release, env: dict[str, str]) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    # Nothing but the release's interpreter and the working directory may supply imports.
    path = f"{release.bin_dir}{os.pathsep}{inherited.get('PATH', '')}"
    full = {**inherited, **env, "PATH": path, "PYTHONNOUSERSITE": "1"}
    found = shutil.which("python", path=path)
    assert found is not None and Path(found).parent == release.bin_dir, f"python on PATH is {found}"
    return full


def run_pre_deploy(name: str, release: Release, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = command_argv(railway_config(name)["deploy"]["preDeployCommand"])
    return subprocess.run(
        argv,
        cwd=release.app_dir,
        env=process_env(release, env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def start(name: str, release: Release, env: dict[str, str], log_dir: Path) -> Service:
    argv = command_argv(railway_config(name)["deploy"]["startCommand"])
    full = process_env(release, env)
    port = free_port() if name in HTTP_SERVICES else None
    if port is not None:
        full["PORT"] = str(port)  # Railway injects PORT; the HTTP services read it through their settings
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(argv, cwd=release.app_dir, env=full, stdout=log_file, stderr=subprocess.STDOUT)
    return Service(name, process, log_path, port)


async def wait_consuming(service: Service, amqp_url: str, topology: Topology, deadline_s: float = 90.0) -> None:
    """Until the broker itself reports a consumer on every work queue: the worker's readiness, it has no HTTP."""
    queues = [topology.work_queue(tier) for tier in Tier]
    broker = BrokerProbe(amqp_url, topology, name=f"deploy:{service.name}")

    async def consuming() -> bool:
        if service.process.poll() is not None:
            raise AssertionError(f"{service.name} exited early:\n{service.log()}")
        states = await broker.try_states(queues)  # None until the worker has declared them
        return states is not None and all(state.consumers >= 1 for state in states)

    try:
        await poll(
            consuming, within=deadline_s, every=0.25, what=lambda: f"{service.name} to consume:\n{service.log()}"
        )
    finally:
        await broker.close()


async def deploy_and_stop(
    name: str, release: Release, env: dict[str, str], log_dir: Path, amqp_url: str, topology: Topology
) -> None:
    """Railway's sequence for one service: the pre-deploy command to completion, the start command until it
    serves (or consumes), then SIGTERM, which must end it cleanly."""
    migrated = await asyncio.to_thread(run_pre_deploy, name, release, env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "is at the schema head" in migrated.stdout

    service = start(name, release, env, log_dir)
    try:
        if service.port is None:
            await wait_consuming(service, amqp_url, topology)
        else:
            await wait_healthy(service, deadline_s=90)
            # The image's HEALTHCHECK logic, pointed at this process as PID 1's argv would point it.
            url = health_url(command_argv(railway_config(name)["deploy"]["startCommand"]), {"PORT": str(service.port)})
            assert url is not None and await asyncio.to_thread(probe, url)
    finally:
        code = await asyncio.to_thread(service.stop, 90)
    assert code == 0, service.log()


def sibling_database(dsn: str, name: str) -> str:
    head, _, tail = dsn.rpartition("/")
    _, sep, query = tail.partition("?")
    return f"{head}/{name}{sep}{query}"


@asynccontextmanager
async def scratch_database(dsn: str, purpose: str) -> AsyncIterator[str]:
    """A DSN on `dsn`'s server naming a database that does not exist yet; dropped afterwards."""
    name = f"luster_{purpose}_{uuid.uuid4().hex[:10]}"
    try:
        yield sibling_database(dsn, name)
    finally:
        connection = await asyncpg.connect(split_database(dsn)[0])
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
