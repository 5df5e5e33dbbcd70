"""Running Luster's services as real processes, as deployed, for system tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.harness.poll import poll

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a platform would; the exit code tells whether it stopped gracefully."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start(
    name: str, env: dict[str, str], log_dir: Path, *, port: int | None = None, cwd: Path | None = None
) -> Service:
    """`python -m services.<name>`, from the repository root unless `cwd` names another directory
    (the code is found through PYTHONPATH either way, as in an image whose workdir holds nothing else).
    """
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    if port is not None:
        full_env["PORT"] = str(port)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            cwd=cwd or ROOT,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Service(name, process, log_path, port)


def _running(service: Service) -> None:
    if service.process.poll() is not None:
        raise AssertionError(f"{service.name} exited early:\n{service.log()}")


async def wait_healthy(service: Service, deadline_s: float = 30.0) -> None:
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            _running(service)
            try:
                async with session.get(f"{service.url}/health") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await poll(
            healthy, within=deadline_s, every=0.2, what=lambda: f"{service.name} to be healthy:\n{service.log()}"
        )


async def wait_for_log(service: Service, needle: str, deadline_s: float = 30.0) -> None:
    async def logged() -> bool:
        if needle in service.log():
            return True
        _running(service)
        return False

    await poll(logged, within=deadline_s, every=0.2, what=lambda: f"{service.name} to log {needle!r}:\n{service.log()}")
