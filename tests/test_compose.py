"""docker-compose.yml is a valid Compose file in the production shape, and agrees with .env.example and the
settings classes (no Docker engine runs here, so this is what `docker compose config` would catch and more)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
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
# The services that keep photos; the monitor reads no storage settings at all.
STORING = {"api", "worker"}
DATA_VOLUMES = {
    "postgres": "/var/lib/postgresql/data",
    "rabbitmq": "/var/lib/rabbitmq",
    "minio": "/data",
}
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def variables(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (a field's alias, where it has one)."""
    return {
        (field.validation_alias if isinstance(field.validation_alias, str) else name).upper()
        for name, field in cls.model_fields.items()
    }


def interpolate(value: object) -> str:
    """What compose makes of a value with nothing set in the shell: `${VAR:-default}` is its default."""

    def replace(match: re.Match[str]) -> str:
        return "$" if match.group(0) == "$$" else match.group("default") or ""

    return INTERPOLATION.sub(replace, str(value))


def seconds(duration: str) -> float:
    """A Compose duration (`1m30s`, `75s`) in seconds."""
    assert re.fullmatch(f"(?:{DURATION_PART.pattern})+", duration), duration
    return sum(float(amount) * DURATION_UNITS[unit] for amount, unit in DURATION_PART.findall(duration))


def volume_source(volume: str | dict[str, Any]) -> tuple[str, str]:
    """(source, target) of a short (`name:/path[:ro]`) or long volume entry."""
    if isinstance(volume, dict):
        return str(volume.get("source", "")), str(volume["target"])
    source, target, *_ = volume.split(":")
    return source, target


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.protocols.Validator:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    # The schema declares "https://json-schema.org/draft-07/schema", a spelling validator_for does not map.
    validator: jsonschema.protocols.Validator = jsonschema.Draft7Validator(schema)
    return validator


def env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def environment(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {name: interpolate(value) for name, value in compose["services"][service]["environment"].items()}


def test_compose_file_follows_the_compose_specification(
    compose: dict[str, Any], compose_schema: jsonschema.protocols.Validator
) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in compose_schema.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_what_compose_would(
    compose: dict[str, Any], compose_schema: jsonschema.protocols.Validator
) -> None:
    """The validation above is not vacuous: a misspelt key and a wrong type are caught."""
    misspelt = copy.deepcopy(compose)
    misspelt["services"]["worker"]["stop_grace"] = "75s"
    wrong_type = copy.deepcopy(compose)
    wrong_type["services"]["api"]["ports"] = 8000
    assert not compose_schema.is_valid(misspelt)
    assert not compose_schema.is_valid(wrong_type)


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {
        "postgres",
        "rabbitmq",
        "minio",
        "create-bucket",
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


def test_third_party_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "image" in service:
            repository, _, tag = service["image"].rpartition(":")
            assert repository, f"{name}: no tag"
            assert tag != "latest", name
    assert compose["services"]["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert compose["services"]["create-bucket"]["image"].startswith("minio/mc:RELEASE.")


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_compose_variable_is_a_setting_of_its_service(compose: dict[str, Any], service: str) -> None:
    unknown = set(compose["services"][service]["environment"]) - variables(SETTINGS[service]) - LIBRARY_VARIABLES
    assert unknown == set()


def test_services_point_at_the_composed_dependencies(compose: dict[str, Any]) -> None:
    environment = compose["services"]["api"]["environment"]
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert "@rabbitmq:5672" in environment["AMQP_URL"]
    assert environment["OTLP_ENDPOINT"].endswith("jaeger:4318}")
    assert interpolate(environment["TRACE_UI_URL"]) == "http://localhost:16686"


@pytest.mark.parametrize("service", sorted(STORING))
def test_services_keep_files_in_the_bucket(compose: dict[str, Any], service: str) -> None:
    env = environment(compose, service)
    minio = compose["services"]["minio"]["environment"]
    assert env["STORAGE"] == "s3"
    assert env["S3_BUCKET"]
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["S3_REGION"] == "us-east-1"
    # The services sign requests with the MinIO root user, whatever the shell sets it to.
    assert compose["services"][service]["environment"]["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert compose["services"][service]["environment"]["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert "UPLOADS_DIR" not in env
    assert "OUTPUTS_DIR" not in env


def test_the_monitor_gets_no_bucket_credentials(compose: dict[str, Any]) -> None:
    assert not {"STORAGE", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(
        compose["services"]["monitor"]["environment"]
    )


def test_the_bucket_exists_before_the_services_start(compose: dict[str, Any]) -> None:
    creator = compose["services"]["create-bucket"]
    bucket = interpolate(compose["services"]["api"]["environment"]["S3_BUCKET"])
    assert f"store/{bucket}" in interpolate(" ".join(creator["command"]))
    for service in ("api", "worker"):
        assert compose["services"][service]["depends_on"]["create-bucket"] == {
            "condition": "service_completed_successfully"
        }


def test_api_and_worker_share_no_disk(compose: dict[str, Any]) -> None:
    """Nothing but the store joins them: no common volume, no common path, no volume at all."""
    mounts = {
        service: {volume_source(v) for v in compose["services"][service].get("volumes", [])}
        for service in ("api", "worker")
    }
    assert mounts["api"] == set()
    assert mounts["worker"] == set()
    assert "uploads" not in compose.get("volumes", {})
    assert "outputs" not in compose.get("volumes", {})


def test_worker_drains_before_it_is_killed(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    grace = WorkerSettings(shutdown_grace=float(interpolate(worker["environment"]["SHUTDOWN_GRACE"]))).shutdown_grace
    assert seconds(worker["stop_grace_period"]) > grace


@pytest.mark.parametrize("service", ["api", "monitor"])
def test_http_services_have_a_health_check_without_curl(compose: dict[str, Any], service: str) -> None:
    check = compose["services"][service]["healthcheck"]
    assert check["test"][:2] == ["CMD", "python"]
    assert "/health" in check["test"][-1]
    assert "curl" not in " ".join(check["test"])
    # The check asks the port the service listens on.
    assert compose["services"][service]["environment"]["PORT"] in {"8000", "8001"}
    assert "os.environ" in check["test"][-1] and "PORT" in check["test"][-1]


@pytest.mark.parametrize("service", ["api", "worker", "monitor", "postgres", "rabbitmq", "minio"])
def test_long_running_services_come_back(compose: dict[str, Any], service: str) -> None:
    restart = compose["services"][service]["restart"]
    assert restart == "unless-stopped" or restart.startswith("on-failure")


@pytest.mark.parametrize(("service", "target"), sorted(DATA_VOLUMES.items()))
def test_data_lives_in_named_volumes(compose: dict[str, Any], service: str, target: str) -> None:
    mounts = dict(volume_source(v)[::-1] for v in compose["services"][service]["volumes"])
    assert mounts[target] in compose["volumes"]


def test_rabbitmq_keeps_its_node_name(compose: dict[str, Any]) -> None:
    """The data directory is per node name, rabbit@<hostname>: a new random hostname would orphan it."""
    assert compose["services"]["rabbitmq"]["hostname"]


def test_monitor_reads_queue_depths_through_the_management_api(compose: dict[str, Any]) -> None:
    env = environment(compose, "monitor")
    settings = MonitorSettings(rabbitmq_management_url=env["RABBITMQ_MANAGEMENT_URL"])
    assert settings.rabbitmq_management_url is not None
    assert settings.rabbitmq_management_url.get_secret_value().host == "rabbitmq"
    assert "15672:15672" in compose["services"]["rabbitmq"]["ports"]


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = env_example()
    known = set().union(*(variables(cls) for cls in SETTINGS.values()))
    assert listed - known == set(), "in .env.example but read by no service"
    assert known - listed == set(), "read by a service but missing from .env.example"
    for cls in SETTINGS.values():
        assert ApiSettings.model_fields.keys() & cls.model_fields.keys() >= {"database_url", "amqp_url"}


@pytest.mark.parametrize("environment_name", ["development", "production"])
@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_compose_environment_validates_against_the_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, service: str, environment_name: str
) -> None:
    """Every value, `${VAR:-default}` taken at its default, builds the service's settings; with
    ENVIRONMENT=production too, which refuses a local store to the api and the worker."""
    for name in variables(SETTINGS[service]):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment(compose, service).items():
        if name not in LIBRARY_VARIABLES:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ENVIRONMENT", environment_name)
    settings = SETTINGS[service]().model_dump()
    assert settings["environment"] == environment_name
    if service in STORING:
        assert settings["storage"] == "s3"
