"""Logging as every service configures it (shared/telemetry/logs.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.system.processes import ROOT

# A process of its own: structlog's configuration is process-wide.
PROGRAM = """
import json, structlog
from shared.telemetry import logs
processed = []
trace_context = logs._add_trace_context
logs._add_trace_context = lambda logger, method, event: processed.append(method) or trace_context(logger, method, event)
logs.configure_logging("test", "WARNING", json=True)
log = structlog.get_logger()
log.info("below.the_level")
log.warning("at.the_level")
print(json.dumps(processed))
"""


def test_a_line_below_the_level_is_dropped_before_it_is_processed() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["warning"]
    assert "at.the_level" in done.stderr and "below.the_level" not in done.stderr
