"""The runbook's local commands work: every block docs/operations.md marks `<!-- checked -->` runs, in order,
in one bash session against a real api, worker and monitor started here, as an operator would paste them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from shared.db import split_database
from tests.system import processes
from tests.worker.photos import encode, house

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "operations.md"
MARK = "<!-- checked -->"
CHECKED = re.compile(rf"^{re.escape(MARK)}\n```sh\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
ADMIN_PASSWORD = "runbook-secret"
# What the runbook asks an operator to have; missing, the test fails saying so (it never skips).
TOOLS = ("bash", "curl", "jq", "psql", "pg_dump", "pg_restore", "rabbitmqctl")
SCRIPT_DEADLINE_S = 300


@dataclass(frozen=True)
class Block:
    line: int
    body: str


def checked_blocks(text: str) -> list[Block]:
    return [Block(text.count("\n", 0, m.start("body")) + 1, m.group("body")) for m in CHECKED.finditer(text)]


def script(blocks: list[Block]) -> str:
    """One bash session; on failure the ERR trap names the block's line in the runbook."""
    parts = ["set -euo pipefail", f"trap 'echo \"failed in the block at {RUNBOOK.name}:$BLOCK\" >&2' ERR"]
    for block in blocks:
        parts += [f"BLOCK={block.line}", block.body]
    return "\n".join(parts) + "\n"


def test_every_marker_opens_a_shell_block() -> None:
    """A marker that no longer sits right above a ```sh fence would silently drop its block from the check."""
    text = RUNBOOK.read_text()
    assert text.count(MARK) - text.count(f"`{MARK}`") == len(checked_blocks(text))


def test_the_runbook_checks_the_commands_it_promises() -> None:
    commands = "\n".join(block.body for block in checked_blocks(RUNBOOK.read_text()))
    for needle in (
        "$API_URL/health",
        "$MONITOR_URL/health",
        "$MONITOR_URL/admin/health",
        "$API_URL/assets",
        "$API_URL/jobs",
        "/output",
        "$MONITOR_URL/metrics",
        "python -m shared.migrate",
        "python -m services.api.apikeys create",
        "pg_dump",
        "pg_restore",
        "rabbitmqctl --quiet export_definitions -",
    ):
        assert needle in commands, needle
    assert "railway " not in commands, "railway CLI commands cannot run here: leave them unmarked"


@pytest.fixture
async def restore_database_url(database_url: str) -> AsyncIterator[str]:
    """An empty database next to the test database, for the runbook's restore."""
    maintenance, name = split_database(database_url)
    scratch = f"{name}_restore"
    connection = await asyncpg.connect(maintenance)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{scratch}"')
        yield database_url.rsplit("/", 1)[0] + f"/{scratch}"
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await connection.close()


async def run_script(text: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", text],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_DEADLINE_S,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.timeout(SCRIPT_DEADLINE_S + 120)
async def test_the_runbook_commands_work_against_a_local_stack(
    service_env: dict[str, str], database_url: str, restore_database_url: str, tmp_path: Path
) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert missing == [], f"the runbook's checked commands need {missing}"
    workdir, log_dir = tmp_path / "operator", tmp_path / "logs"
    workdir.mkdir()
    log_dir.mkdir()
    (workdir / "listing.jpg").write_bytes(encode(house(1200, 800)))
    env = {**service_env, "ADMIN_PASSWORD": ADMIN_PASSWORD, "HEARTBEAT_INTERVAL": "1", "CHECK_INTERVAL": "1"}

    api = processes.start("api", env, log_dir, port=processes.free_port())
    worker = processes.start("worker", env, log_dir)
    monitor = processes.start("monitor", env, log_dir, port=processes.free_port())
    try:
        await processes.wait_healthy(api, deadline_s=60)
        await processes.wait_healthy(monitor, deadline_s=60)
        operator_env = {
            **os.environ,
            # `python` in the runbook is the project's interpreter, as in the image.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "API_URL": api.url,
            "MONITOR_URL": monitor.url,
            "DATABASE_URL": database_url,
            "RESTORE_DATABASE_URL": restore_database_url,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BROKER_PREFIX": service_env["BROKER_PREFIX"],
        }
        result = await run_script(script(checked_blocks(RUNBOOK.read_text())), operator_env, workdir)
    finally:
        codes = {service.name: service.stop() for service in (api, worker, monitor)}

    logs = "\n".join(f"--- {s.name}\n{s.log()[-3000:]}" for s in (api, worker, monitor))
    assert result.returncode == 0, f"{result.stderr}\n--- stdout\n{result.stdout}\n{logs}"
    assert codes == {"api": 0, "worker": 0, "monitor": 0}, logs
    # What the commands left behind is what the runbook says they produce.
    assert (workdir / "enhanced.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    restored = await asyncpg.connect(restore_database_url)
    try:
        assert await restored.fetchval("SELECT count(*) FROM jobs WHERE status = 'succeeded'") >= 1
    finally:
        await restored.close()
    definitions = json.loads((workdir / "definitions.json").read_text())
    assert any(queue["name"].startswith(service_env["BROKER_PREFIX"]) for queue in definitions["queues"])
