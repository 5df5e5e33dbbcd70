"""The access log's one line per request (shared/http/access.py), as every service configures logging."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.system.processes import ROOT

# A process of its own: structlog's configuration is process-wide.
PROGRAM = """
import asyncio, sys
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from shared.http import access
from shared.telemetry import logs

logs.configure_logging("test", sys.argv[1], json=True)

async def created(_: web.Request) -> web.Response:
    return web.Response(status=201)

async def main() -> None:
    app = web.Application(middlewares=[access.access_log])
    app.router.add_post("/jobs", created)
    async with TestClient(TestServer(app)) as client:
        print((await client.post("/jobs")).status)

asyncio.run(main())
"""


def _served(level: str) -> tuple[int, list[dict[str, object]]]:
    done = subprocess.run([sys.executable, "-c", PROGRAM, level], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return int(done.stdout), [line for line in lines if line["event"] == "http.request"]


def test_a_request_is_logged_once_with_its_outcome() -> None:
    status, lines = _served("INFO")

    assert status == 201
    assert len(lines) == 1
    assert {key: lines[0][key] for key in ("method", "path", "status")} == {
        "method": "POST",
        "path": "/jobs",
        "status": 201,
    }
    assert isinstance(lines[0]["duration_ms"], float)


@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_above_info_the_request_is_answered_and_not_logged(level: str) -> None:
    assert _served(level) == (201, [])
