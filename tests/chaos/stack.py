"""The services of one scenario as real processes, restarted like a platform would restart them.

Each process leads its own session, so a SIGKILLed worker's engine pool processes are reaped with it
(a container runtime would take them down together). The supervisor notices exits, records them
and, for services started with `restart=True`, starts a new incarnation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.harness.poll import poll
from tests.system.processes import ROOT, Service, free_port

SUPERVISE_EVERY_S = 0.1


@dataclass(frozen=True)
class Exit:
    """One incarnation ended: when, with which code, and why (`terminated` or `killed` by the harness, or `died`)."""

    name: str
    incarnation: int
    at: float
    returncode: int
    cause: str


@dataclass
class Managed:
    """One logical service (`worker-1`, `api`, ...) across its incarnations."""

    name: str
    kind: str
    env: dict[str, str]
    log_dir: Path
    restart: bool
    port: int | None = None
    incarnation: int = 0
    service: Service | None = None
    started_at: float = 0.0
    held: bool = False  # the harness is stopping or has stopped it: the supervisor leaves it alone
    killed: bool = False  # the harness SIGKILLed this incarnation

    @property
    def worker_id(self) -> str:
        return f"chaos-{self.name}-{self.incarnation}"

    @property
    def pid(self) -> int | None:
        return self.service.process.pid if self.service else None

    @property
    def alive(self) -> bool:
        return self.service is not None and self.service.process.poll() is None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> list[Path]:
        return sorted(self.log_dir.glob(f"{self.name}.*.log"))


def _spawn(managed: Managed) -> Service:
    managed.incarnation += 1
    managed.killed = False
    env = {**os.environ, **managed.env, "PYTHONPATH": str(ROOT)}
    if managed.port is not None:
        env["PORT"] = str(managed.port)
    if managed.kind == "worker":
        env["WORKER_ID"] = managed.worker_id
    log_path = managed.log_dir / f"{managed.name}.{managed.incarnation}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{managed.kind}"],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    managed.started_at = time.time()
    return Service(managed.name, process, log_path, managed.port)


def _reap_group(pid: int) -> None:
    """SIGKILL what is left of a process's session (engine pool processes of a killed worker).

    Only right after reaping the leader itself: while its group has members the id cannot be reused.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Stack:
    """Starts, kills, terminates and supervises the processes of one scenario."""

    def __init__(self, env: dict[str, str], log_dir: Path, on_exit: Callable[[Exit], None]) -> None:
        self.env = env
        self.log_dir = log_dir
        self.services: dict[str, Managed] = {}
        self.exits: list[Exit] = []
        self._on_exit = on_exit
        self._supervisor: asyncio.Task[None] | None = None

    def start(self, kind: str, name: str, *, env: dict[str, str] | None = None, restart: bool = True) -> Managed:
        port = free_port() if kind in ("api", "monitor") else None
        managed = Managed(name, kind, {**self.env, **(env or {})}, self.log_dir, restart, port)
        managed.service = _spawn(managed)
        self.services[name] = managed
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise())
        return managed

    def of_kind(self, kind: str) -> list[Managed]:
        return [managed for managed in self.services.values() if managed.kind == kind]

    def by_worker_id(self, worker_id: str) -> Managed | None:
        return next((m for m in self.of_kind("worker") if m.worker_id == worker_id and m.alive), None)

    def kill(self, name: str) -> None:
        """SIGKILL, as an OOM killer or a lost machine would; the supervisor restarts it if asked to."""
        managed = self.services[name]
        if managed.pid is not None and managed.alive:
            managed.killed = True
            os.kill(managed.pid, signal.SIGKILL)

    async def terminate(self, name: str, *, grace_s: float = 60.0) -> tuple[int, float]:
        """SIGTERM and wait, as a platform stopping a replica; returns the exit code and the seconds taken.

        A process still running after `grace_s` is SIGKILLed, as the platform would.
        """
        managed = self.services[name]
        managed.held = True
        assert managed.service is not None
        process = managed.service.process
        started = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        returncode = process.returncode
        _reap_group(process.pid)
        self._record(managed, returncode, cause="terminated")
        return returncode, time.monotonic() - started

    def respawn(self, name: str) -> Managed:
        managed = self.services[name]
        managed.service = _spawn(managed)
        managed.held = False
        return managed

    async def stop_all(self, grace_s: float = 60.0) -> dict[str, int]:
        """SIGTERM every running service at once; their exit codes by name."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        running = [m for m in self.services.values() if m.alive and not m.held]
        codes = await asyncio.gather(*(self.terminate(m.name, grace_s=grace_s) for m in running))
        return {m.name: code for m, (code, _) in zip(running, codes, strict=True)}

    def _record(self, managed: Managed, returncode: int, *, cause: str) -> None:
        if any(e.name == managed.name and e.incarnation == managed.incarnation for e in self.exits):
            return
        exit_ = Exit(managed.name, managed.incarnation, time.time(), returncode, cause)
        self.exits.append(exit_)
        self._on_exit(exit_)

    async def _supervise(self) -> None:
        while True:
            for managed in list(self.services.values()):
                if managed.held or managed.service is None or managed.alive:
                    continue
                assert managed.pid is not None
                _reap_group(managed.pid)
                cause = "killed" if managed.killed else "died"
                self._record(managed, managed.service.process.returncode, cause=cause)
                if managed.restart:
                    managed.service = _spawn(managed)
                else:
                    managed.held = True
            await asyncio.sleep(SUPERVISE_EVERY_S)


def rss_kb(pid: int) -> int | None:
    """Resident memory of one process, from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def wait_http(managed: Managed, *, healthy: bool, deadline_s: float = 90.0) -> None:
    """Until /health answers (with 200 when `healthy`); the supervisor may restart the process meanwhile."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def answering() -> bool:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{managed.url}/health") as response:
                    return response.status == 200 or (not healthy and response.status == 503)
            return False

        def logs() -> str:
            tail = "\n".join(path.read_text(errors="replace")[-3000:] for path in managed.logs()[-1:])
            return f"{managed.name} to answer /health:\n{tail}"

        await poll(answering, within=deadline_s, every=0.2, what=logs)
