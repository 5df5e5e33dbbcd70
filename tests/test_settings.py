"""Start-up refuses bad configuration with one line naming the variable, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.api.settings import ApiSettings
from services.monitor.settings import MonitorSettings
from services.worker.settings import WorkerSettings
from shared.settings import StorageSettings

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
        ("api", "AMQP_URL", "amqp://guest:guest@node-1:5672/,,amqp://guest:guest@node-2:5672/"),
        ("monitor", "AMQP_URL", "amqp://guest:guest@node-1:5672/,http://guest:guest@node-2/"),
        ("api", "DATABASE_URL", "postgresql://postgres@primary:5432,/luster"),
        ("api", "PORT", "eighty"),
        ("api", "LOG_LEVEL", "LOUD"),
        ("api", "SENTRY_TRACES_SAMPLE_RATE", "1.5"),
        ("api", "MAX_UPLOAD_BYTES", "-1"),
        ("worker", "CONCURRENCY", "0"),
        ("worker", "ENGINE", "magic"),
        ("worker", "JOB_TIMEOUT", "3600"),
        ("worker", "LUSTER_FAULTS", "kill_everything:1.0"),
        ("worker", "LUSTER_FAULTS", "engine_hang:2"),
    ],
)
def test_a_bad_value_stops_the_service_naming_the_variable(service: str, variable: str, value: str) -> None:
    result = _start(service, **{variable: value})

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"luster: invalid configuration: {variable}:"), lines[0]


def test_a_clusters_addresses_are_each_checked_and_never_shown_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://luster:first-secret@node-1:5672/, amqp://luster:second-secret@node-2:5672/")
    monkeypatch.setenv(
        "DATABASE_URL",
        "postgresql://luster:pg-secret@primary:5432,standby:5432/luster?target_session_attrs=read-write",
    )

    settings = ApiSettings()

    assert settings.amqp_url.addresses() == [
        "amqp://luster:first-secret@node-1:5672/",
        "amqp://luster:second-secret@node-2:5672/",
    ]
    shown = f"{settings.amqp_url} {settings.database_url!r} {settings.model_dump_json()}"
    assert not {"first-secret", "second-secret", "pg-secret"} & set(shown.replace(":", " ").replace("@", " ").split())
    assert "-secret" not in shown
    assert "amqp://luster:***@node-1:5672/,amqp://luster:***@node-2:5672/" in shown
    assert "postgresql://luster:***@primary:5432,standby:5432/luster?target_session_attrs=read-write" in shown


def test_a_bad_cluster_address_is_named_by_its_place_without_its_password() -> None:
    result = _start("api", AMQP_URL="amqp://guest:guest@node-1:5672/,http://luster:hunter22@node-2/")

    message = "luster: invalid configuration: AMQP_URL: address 2: URL scheme should be 'amqp' or 'amqps'"
    assert result.stderr.strip() == message


def test_moderation_needs_an_openai_key() -> None:
    result = _start("api", MODERATION="openai", OPENAI_API_KEY="")

    assert result.returncode != 0
    assert result.stderr.strip() == "luster: invalid configuration: OPENAI_API_KEY is required when MODERATION=openai"


def test_the_openai_engine_needs_its_key() -> None:
    result = _start("worker", ENGINE="openai", OPENAI_API_KEY="")

    assert result.returncode != 0
    assert result.stderr.strip() == "luster: invalid configuration: OPENAI_API_KEY is required when ENGINE=openai"


@pytest.mark.parametrize("service", ["api", "worker"])
def test_production_refuses_local_storage_in_one_line(service: str) -> None:
    result = _start(service, ENVIRONMENT="production", STORAGE="local")

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "luster: invalid configuration: STORAGE=local in production: services on separate machines share no disk; "
        "set STORAGE=s3, or ALLOW_LOCAL_STORAGE=true for a single-machine deploy"
    )


def test_the_monitor_reads_no_photos_so_needs_no_store() -> None:
    assert not {"storage", "uploads_dir", "s3_bucket"} & MonitorSettings.model_fields.keys()


def test_a_single_machine_production_deploy_may_keep_local_storage() -> None:
    settings = StorageSettings(environment="production", storage="local", allow_local_storage=True)

    assert settings.storage == "local"


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"STORAGE": "s3"}, "S3_BUCKET is required when STORAGE=s3"),
        (
            {"STORAGE": "s3", "S3_BUCKET": "photos", "AWS_ACCESS_KEY_ID": "AKIA-only-half"},
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both or neither",
        ),
        ({"STORAGE": "s3", "S3_BUCKET": "Not_A_Bucket"}, "S3_BUCKET: String should match pattern"),
        ({"STORAGE": "s3", "S3_BUCKET": "photos", "S3_ENDPOINT_URL": "ftp://store"}, "S3_ENDPOINT_URL: URL scheme"),
        ({"STORAGE": "s3", "S3_BUCKET": "photos", "S3_MULTIPART_BYTES": "1024"}, "S3_MULTIPART_BYTES: Input should"),
        ({"STORAGE": "tape"}, "STORAGE: Input should be 'local' or 's3'"),
    ],
)
def test_bad_storage_settings_stop_the_service_naming_them(env: dict[str, str], line: str) -> None:
    result = _start("api", **env)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"luster: invalid configuration: {line}"), lines[0]


def test_a_dotenv_file_fills_in_what_the_environment_does_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\nAPP_VERSION=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_VERSION", "from-environment")
    monkeypatch.delenv("LOG_LEVEL", raising=False)

    settings = StorageSettings()

    assert (settings.log_level, settings.app_version) == ("DEBUG", "from-environment")


@pytest.mark.parametrize("cls", [ApiSettings, WorkerSettings, MonitorSettings])
def test_a_copy_of_env_example_is_a_valid_dotenv(
    cls: type[ApiSettings | WorkerSettings | MonitorSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.isupper() and name not in {"PATH", "HOME"}:
            monkeypatch.delenv(name)

    assert cls().environment == "development"
