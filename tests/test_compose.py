"""docker-compose.yml and .env.example agree with the settings classes (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.api.settings import ApiSettings
from services.monitor.settings import MonitorSettings
from services.worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, type[BaseSettings]] = {"api": ApiSettings, "worker": WorkerSettings, "monitor": MonitorSettings}
# Read by libraries, not by our settings classes.
LIBRARY_VARIABLES = {"OTEL_BSP_SCHEDULE_DELAY"}


def variables(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (a field's alias, where it has one)."""
    return {
        (field.validation_alias if isinstance(field.validation_alias, str) else name).upper()
        for name, field in cls.model_fields.items()
    }


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "postgres",
        "rabbitmq",
        "migrate",
        "api",
        "worker",
        "monitor",
        "jaeger",
        "grafana",
    }
    assert compose["services"]["rabbitmq"]["image"].endswith("-management")
    for name in SETTINGS:
        assert compose["services"][name]["command"] == ["python", "-m", f"services.{name}"]


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_compose_variable_is_a_setting_of_its_service(compose: dict[str, Any], service: str) -> None:
    environment = set(compose["services"][service]["environment"])
    unknown = environment - variables(SETTINGS[service]) - LIBRARY_VARIABLES
    assert unknown == set()


def test_services_point_at_the_composed_dependencies(compose: dict[str, Any]) -> None:
    environment = compose["services"]["api"]["environment"]
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert "@rabbitmq:5672" in environment["AMQP_URL"]
    assert environment["OTLP_ENDPOINT"].endswith("jaeger:4318}")


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = env_example()
    known = set().union(*(variables(cls) for cls in SETTINGS.values()))
    assert listed - known == set(), "in .env.example but read by no service"
    assert known - listed == set(), "read by a service but missing from .env.example"
    for cls in SETTINGS.values():
        assert ApiSettings.model_fields.keys() & cls.model_fields.keys() >= {"database_url", "amqp_url"}


def test_compose_environment_matches_the_settings_types(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The literal values in compose validate (variables with ${...} defaults are left to the shell)."""
    for service, cls in SETTINGS.items():
        for name, value in compose["services"][service]["environment"].items():
            if "${" in str(value) or name in LIBRARY_VARIABLES:
                continue
            monkeypatch.setenv(name, str(value))
        cls()
        for name in compose["services"][service]["environment"]:
            monkeypatch.delenv(name, raising=False)
