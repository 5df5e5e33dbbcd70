"""The monitor's settings: defaults, and one clear line naming a bad variable."""

from __future__ import annotations

import pytest

from services.monitor.settings import MonitorSettings
from shared.settings import load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell (`make run` exports ADMIN_PASSWORD) must not leak into these tests."""
    for name in MonitorSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_defaults() -> None:
    settings = MonitorSettings()
    assert (settings.port, settings.admin_username, settings.admin_password) == (8001, "admin", None)
    assert (settings.alert_error_rate, settings.alert_failure_rate, settings.alert_queue_depth) == (0.05, 0.10, 50)
    assert (settings.alert_latency_p95_seconds, settings.alert_consecutive_checks) == (2.0, 3)


def test_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("ADMIN_PASSWORD", "long enough secret")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")
    monkeypatch.setenv("HEARTBEAT_STALE_FACTOR", "4")
    settings = load_settings(MonitorSettings)
    assert settings.port == 9100 and settings.heartbeat_stale_factor == 4
    assert settings.admin_password is not None and settings.admin_password.get_secret_value() == "long enough secret"
    assert "long enough secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("ALERT_ERROR_RATE", "2"), ("ADMIN_PASSWORD", "short"), ("ALERT_FAILURE_WINDOW", "vibes"), ("PORT", "x")],
)
def test_a_bad_value_stops_with_its_name(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        load_settings(MonitorSettings)
    assert str(stopped.value).startswith(f"luster: invalid configuration: {name}: ")
