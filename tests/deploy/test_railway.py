"""Railway's config-as-code for the three services: valid against Railway's schema, and each command runs as written."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from services.worker.settings import WorkerSettings
from shared.settings import BaseServiceSettings
from shared.topology import Topology
from tests.deploy.launch import (
    HTTP_SERVICES,
    RAILWAY,
    ROOT,
    SERVICES,
    Release,
    command_argv,
    command_line,
    deploy_and_stop,
    railway_config,
)

SCHEMA = RAILWAY / "railway.schema.json"
# Anything a shell would act on: Railway execs the command without one, so none of it could work anyway.
SHELL_SYNTAX = re.compile(r"[;&|<>$`\\'\"(){}\[\]*?!~#\n]")


def _deploy(name: str) -> dict[str, Any]:
    deploy: dict[str, Any] = railway_config(name)["deploy"]
    return deploy


def test_the_schema_is_the_copy_the_readme_names() -> None:
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()

    assert digest in (RAILWAY / "README.md").read_text()
    Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))


@pytest.mark.parametrize("name", SERVICES)
def test_config_is_valid_against_railways_schema(name: str) -> None:
    validator = Draft7Validator(json.loads(SCHEMA.read_text()))

    errors = [
        f"{'/'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(railway_config(name))
    ]

    assert errors == []


@pytest.mark.parametrize("name", SERVICES)
def test_builds_the_one_image_with_its_dockerfile(name: str) -> None:
    build = railway_config(name)["build"]

    assert build["builder"] == "DOCKERFILE"
    assert build["dockerfilePath"] == "deploy/Dockerfile"
    assert (ROOT / build["dockerfilePath"]).is_file()


@pytest.mark.parametrize("name", SERVICES)
def test_start_command_execs_python_with_no_shell_in_between(name: str) -> None:
    start = _deploy(name)["startCommand"]

    assert command_argv(start) == ["python", "-m", f"services.{name}"]
    assert not SHELL_SYNTAX.search(start)


@pytest.mark.parametrize("name", SERVICES)
def test_pre_deploy_migrates_under_the_lock(name: str) -> None:
    pre_deploy = _deploy(name)["preDeployCommand"]

    assert command_argv(pre_deploy) == ["python", "-m", "shared.migrate"]
    assert not SHELL_SYNTAX.search(command_line(pre_deploy))


def test_worker_drains_longer_than_its_shutdown_grace() -> None:
    grace = WorkerSettings.model_fields["shutdown_grace"].default

    assert _deploy("worker")["drainingSeconds"] > grace


@pytest.mark.parametrize("name", HTTP_SERVICES)
def test_http_services_are_health_checked_past_their_start_up_wait(name: str) -> None:
    deploy = _deploy(name)
    # A service waits up to STARTUP_TIMEOUT for PostgreSQL and RabbitMQ before it answers at all.
    startup_timeout = BaseServiceSettings.model_fields["startup_timeout"].default

    assert deploy["healthcheckPath"] == "/health"
    assert deploy["healthcheckTimeout"] > startup_timeout
    assert deploy["drainingSeconds"] > 0


def test_worker_has_no_http_health_check() -> None:
    assert "healthcheckPath" not in _deploy("worker")


@pytest.mark.parametrize("name", SERVICES)
def test_a_crash_is_restarted_a_bounded_number_of_times(name: str) -> None:
    deploy = _deploy(name)

    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert deploy["restartPolicyMaxRetries"] >= 3


@pytest.mark.parametrize("name", SERVICES)
def test_watch_patterns_name_real_paths_and_only_this_services_code(name: str) -> None:
    patterns = railway_config(name)["build"]["watchPatterns"]
    others = [other for other in SERVICES if other != name]

    assert {f"/services/{name}/**", "/shared/**", "/requirements.lock", "/deploy/Dockerfile"} <= set(patterns)
    assert not [pattern for pattern in patterns if any(f"/services/{other}/" in pattern for other in others)]
    assert all(Path(ROOT, pattern.strip("/").removesuffix("/**")).exists() for pattern in patterns)


@pytest.mark.integration
@pytest.mark.parametrize("name", SERVICES)
async def test_each_command_runs_as_railway_runs_it(
    name: str,
    service_env: dict[str, str],
    empty_database: str,
    amqp_url: str,
    topology: Topology,
    log_dir: Path,
) -> None:
    """From the repository and its venv: pre-deploy on an empty database, start, ready, SIGTERM, exit 0."""
    env = {**service_env, "DATABASE_URL": empty_database, "ADMIN_PASSWORD": "correct horse battery staple"}
    repository = Release(app_dir=ROOT, bin_dir=Path(sys.executable).parent)  # not resolved: the venv's own link

    await deploy_and_stop(name, repository, env, log_dir, amqp_url, topology)
