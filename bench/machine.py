"""What the benchmarks ran on: the machine, the servers, the packages that matter and the commit."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import aio_pika
import asyncpg

from shared.db import split_database

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aiohttp", "aio-pika", "asyncpg", "Pillow", "dramatiq", "celery")
# The page itself is rewritten by every run: its being dirty says nothing about what was measured.
GENERATED = ":(exclude)docs/benchmarks.md"
SERVER_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Machine:
    date: str
    commit: str
    cpu: str
    memory: str
    kernel: str
    python: str
    postgresql: str
    rabbitmq: str
    packages: dict[str, str | None]  # None: not installed


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def commit() -> str:
    """`git rev-parse --short HEAD`, marked when the work tree differs from it."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", ".", GENERATED)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"
    return f"{head} (uncommitted changes)" if dirty else head


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def cpu() -> str:
    models = [line.partition(":")[2].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")]
    model = models[0] if models else platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} CPUs ({platform.machine()})"


def memory() -> str:
    total = next((line.split()[1] for line in _lines("/proc/meminfo") if line.startswith("MemTotal:")), None)
    return f"{int(total) / 1024**2:.1f} GiB" if total else "unknown"


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:  # not Linux
        return []


def packages() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


async def postgresql_version(database_url: str) -> str:
    # The maintenance database: the benchmarks' own may not exist yet.
    connection = await asyncpg.connect(split_database(database_url)[0], timeout=SERVER_TIMEOUT_S)
    try:
        version = connection.get_server_version()
    finally:
        await connection.close()
    # asyncpg files PostgreSQL 10 and later's "15.20" as major 15, micro 20.
    parts = (version.major, version.micro) if version.major >= 10 else (version.major, version.minor, version.micro)
    return ".".join(map(str, parts))


async def rabbitmq_version(amqp_url: str) -> str:
    connection = await aio_pika.connect(amqp_url, timeout=SERVER_TIMEOUT_S)
    async with connection:
        assert connection.transport is not None  # connected
        version = connection.transport.connection.server_properties.get("version", "unknown")
    return version.decode() if isinstance(version, bytes) else str(version)


async def _version(probe: Awaitable[str]) -> str:
    """The server's version, or why there is none: the page is written whether the servers answer or not."""
    try:
        async with asyncio.timeout(2 * SERVER_TIMEOUT_S):
            return await probe
    except Exception as error:  # any failure to reach a server is reported, never raised
        return f"unreachable ({type(error).__name__})"


async def describe(database_url: str, amqp_url: str) -> Machine:
    postgresql, rabbitmq = await asyncio.gather(
        _version(postgresql_version(database_url)),
        _version(rabbitmq_version(amqp_url)),
    )
    return Machine(
        date=now(),
        commit=commit(),
        cpu=cpu(),
        memory=memory(),
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        postgresql=postgresql,
        rabbitmq=rabbitmq,
        packages=packages(),
    )
