"""Start-up refuses bad configuration with one line naming the variable, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _start(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("service", "variable", "value"),
    [
        ("api", "DATABASE_URL", "mysql://root@localhost/luster"),
        ("api", "AMQP_URL", "not a url"),
        ("api", "PORT", "eighty"),
        ("api", "LOG_LEVEL", "LOUD"),
        ("api", "SENTRY_TRACES_SAMPLE_RATE", "1.5"),
        ("api", "MAX_UPLOAD_BYTES", "-1"),
        ("worker", "CONCURRENCY", "0"),
        ("worker", "ENGINE", "magic"),
        ("worker", "JOB_TIMEOUT", "3600"),
    ],
)
def test_a_bad_value_stops_the_service_naming_the_variable(service: str, variable: str, value: str) -> None:
    result = _start(service, **{variable: value})

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"luster: invalid configuration: {variable}:"), lines[0]


def test_the_openai_engine_needs_its_key() -> None:
    result = _start("worker", ENGINE="openai", OPENAI_API_KEY="")

    assert result.returncode != 0
    assert result.stderr.strip() == "luster: invalid configuration: OPENAI_API_KEY is required when ENGINE=openai"
