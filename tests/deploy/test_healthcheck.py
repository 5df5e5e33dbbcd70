"""The image's HEALTHCHECK: which URL it probes for each start command, and that only a 200 passes."""

from __future__ import annotations

from shared.healthcheck import health_url, probe
from tests.system.processes import free_port


def test_the_api_and_monitor_are_probed_on_port_or_their_default() -> None:
    assert health_url(["python", "-m", "services.api"], {"PORT": "9000"}) == "http://127.0.0.1:9000/health"
    assert health_url(["python", "-m", "services.api"], {}) == "http://127.0.0.1:8000/health"
    assert health_url(["/opt/venv/bin/python", "-m", "services.monitor"], {}) == "http://127.0.0.1:8001/health"


def test_the_worker_and_other_commands_have_nothing_to_probe() -> None:
    assert health_url(["python", "-m", "services.worker"], {"PORT": "9000"}) is None
    assert health_url(["python", "-m", "shared.migrate"], {}) is None
    assert health_url(["python", "-m"], {}) is None
    assert health_url(["sh"], {}) is None


def test_nothing_listening_is_unhealthy() -> None:
    assert probe(f"http://127.0.0.1:{free_port()}/health", timeout=2) is False
