"""The shared RabbitMQ and PostgreSQL, stopped and started with their own controls, and never left down.

Other engineers test against the same servers, so a scenario that stops one first takes
`/tmp/luster-chaos.lock` and waits until no other pytest process is running (`exclusive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
import structlog

from shared.db import split_database
from tests.harness.poll import poll
from tests.harness.procs import parent

log = structlog.get_logger()

LOCK = Path("/tmp/luster-chaos.lock")
WAITING = Path("/tmp/luster-chaos.waiting")  # WAITING.<pid>: that pytest session waits for the lock
STALE_UNSIGNED_S = 3600.0
RABBITMQCTL = "rabbitmqctl"
PG_CLUSTER = ("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main")
LOCK_WAIT_S = float(os.environ.get("CHAOS_LOCK_WAIT", "900"))
LOCK_POLL_S = 20.0


class ServerControlError(RuntimeError):
    """A server control command failed."""


async def run_command(*argv: str, limit_s: float = 120.0) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(limit_s):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ServerControlError(f"{' '.join(argv)} did not finish in {limit_s:g} s") from None
    if process.returncode != 0:
        raise ServerControlError(f"{' '.join(argv)} exited {process.returncode}: {output.decode(errors='replace')}")
    return output.decode(errors="replace")


async def rabbitmq_answers(amqp_url: str) -> bool:
    try:
        connection = await aio_pika.connect(amqp_url, timeout=5)
    except Exception:
        return False
    await connection.close()
    return True


async def postgres_answers(database_url: str) -> bool:
    maintenance, _ = split_database(database_url)
    try:
        connection = await asyncpg.connect(maintenance, timeout=5)
    except Exception:
        return False
    try:
        return bool(await connection.fetchval("SELECT 1", timeout=5))
    except Exception:
        return False
    finally:
        await connection.close(timeout=5)


async def wait_answering(amqp_url: str, database_url: str, *, deadline_s: float = 90.0) -> None:
    async def answering() -> bool:
        return await rabbitmq_answers(amqp_url) and await postgres_answers(database_url)

    await poll(answering, within=deadline_s, every=0.5, what="RabbitMQ and PostgreSQL to answer")


async def stop_rabbitmq() -> None:
    await run_command(RABBITMQCTL, "stop_app")


async def start_rabbitmq() -> None:
    await run_command(RABBITMQCTL, "start_app")


async def restart_postgres() -> None:
    await run_command(*PG_CLUSTER, "restart")


async def stop_postgres() -> None:
    await run_command(*PG_CLUSTER, "stop")


async def start_postgres() -> None:
    await run_command(*PG_CLUSTER, "start")


async def postgres_started_at(database_url: str) -> float:
    """When the running PostgreSQL server started (epoch seconds): the end of a restart, to the millisecond."""
    maintenance, _ = split_database(database_url)
    connection = await asyncpg.connect(maintenance, timeout=10)
    try:
        return float(await connection.fetchval("SELECT extract(epoch FROM pg_postmaster_start_time())"))
    finally:
        await connection.close()


async def ensure_running(amqp_url: str, database_url: str) -> list[str]:
    """Start whichever server does not answer, and wait until both do; returns what had to be started."""
    started: list[str] = []
    if not await rabbitmq_answers(amqp_url):
        with contextlib.suppress(ServerControlError):
            await start_rabbitmq()
        started.append("rabbitmq")
    if not await postgres_answers(database_url):
        with contextlib.suppress(ServerControlError):  # "already running" while it is still starting
            await start_postgres()
        started.append("postgresql")
    await wait_answering(amqp_url, database_url)
    if started:
        log.warning("chaos.servers_restarted", servers=started)
    return started


def _ancestors(pid: int) -> set[int]:
    found: set[int] = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        if (above := parent(pid)) is None:
            break
        pid = above
    return found


def other_pytests() -> list[str]:
    """`pgrep -af pytest`, minus this process, the shells and make that started it, and idle waiters.

    A pytest session waiting for the chaos lock (it left a WAITING file) runs nothing meanwhile; ignoring
    it lets two chaos runs take turns instead of waiting for each other.
    """
    ignored = _ancestors(os.getpid())
    for marker in WAITING.parent.glob(f"{WAITING.name}.*"):
        waiter = marker.name.rpartition(".")[2]
        if waiter.isdigit():
            ignored |= _ancestors(int(waiter))
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ignored:
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "pytest" in command and "pgrep" not in command:
            found.append(f"{entry.name} {command[:160]}")
    return found


def _holder() -> str | None:
    """Who holds the lock, if anyone else does: a live pid, or an unsigned lock less than an hour old."""
    try:
        text, age = LOCK.read_text(), time.time() - LOCK.stat().st_mtime
    except OSError:
        return None
    first = text.split()[0] if text.split() else ""
    if not first.isdigit():
        return None if age > STALE_UNSIGNED_S else f"unsigned lock ({age:.0f} s old)"
    pid = int(first)
    if pid == os.getpid() or not Path(f"/proc/{pid}").exists():
        return None
    return f"pid {pid}"


def _take_lock() -> bool:
    """Create the lock atomically, replacing a stale one; False when someone else holds it."""
    if _holder() is not None:
        return False
    with contextlib.suppress(FileNotFoundError):
        if LOCK.read_text().split()[:1] != [str(os.getpid())]:
            LOCK.unlink()  # stale: its holder is gone
    try:
        descriptor = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return LOCK.read_text().split()[:1] == [str(os.getpid())]
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{os.getpid()} {time.time():.0f} luster chaos suite\n")
    return True


def _release_lock() -> None:
    with contextlib.suppress(OSError):
        if LOCK.read_text().split()[:1] == [str(os.getpid())]:
            LOCK.unlink()


def _waiting(yes: bool) -> None:
    marker = WAITING.with_name(f"{WAITING.name}.{os.getpid()}")
    if yes:
        marker.touch()
    else:
        marker.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def exclusive(amqp_url: str, database_url: str) -> AsyncIterator[None]:
    """Hold the chaos lock while no other pytest runs; both servers answer again when it is released."""
    deadline = time.monotonic() + LOCK_WAIT_S
    _waiting(True)
    try:
        while True:
            held = _take_lock()
            others = other_pytests() if held else []
            if held and not others:
                break
            if time.monotonic() > deadline:
                raise ServerControlError(f"servers busy for {LOCK_WAIT_S:g} s: {_holder() or others}")
            log.warning("chaos.waiting_for_servers", holder=_holder(), others=others)
            await asyncio.sleep(LOCK_POLL_S)
        _waiting(False)
        yield
    finally:
        _waiting(False)
        try:
            await ensure_running(amqp_url, database_url)
        finally:
            _release_lock()
