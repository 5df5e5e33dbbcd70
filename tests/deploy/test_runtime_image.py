"""The runtime lock alone runs every service: a fresh venv from requirements.lock, the code copied as in the image.

Slow on purpose (a venv built and installed from scratch, once for the module; pip's cache makes reruns quicker):
a package the services import but the runtime lock lacks fails here, never first in production.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.topology import Topology
from tests.deploy.launch import ROOT, SERVICES, Release, deploy_and_stop

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# What deploy/Dockerfile copies into /app; nothing else of the repository is importable there.
IMAGE_CONTENTS = ("shared", "services", "alembic.ini")


def _install_runtime_lock(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # As the image's builder stage installs it: hash-checked wheels, the runtime lock and nothing else.
    subprocess.run(
        [*pip, "--require-hashes", "--only-binary=:all:", "-r", str(ROOT / "requirements.lock")],
        check=True,
        timeout=800,
    )


def _copy_image_contents(app: Path) -> None:
    app.mkdir()
    for item in IMAGE_CONTENTS:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, app / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, app / item)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Release:
    root = tmp_path_factory.mktemp("image")
    _install_runtime_lock(root / "venv")
    _copy_image_contents(root / "app")
    return Release(app_dir=root / "app", bin_dir=root / "venv" / "bin")


def test_the_runtime_venv_holds_no_development_package(image: Release) -> None:
    probe = subprocess.run(
        [str(image.bin_dir / "python"), "-c", "import pytest"], capture_output=True, timeout=60, check=False
    )

    assert probe.returncode != 0  # so the services below import from the runtime lock and nowhere else


@pytest.mark.parametrize("name", SERVICES)
async def test_each_service_runs_from_the_runtime_lock_alone(
    name: str,
    image: Release,
    service_env: dict[str, str],
    empty_database: str,
    amqp_url: str,
    topology: Topology,
    log_dir: Path,
) -> None:
    env = {**service_env, "DATABASE_URL": empty_database, "ADMIN_PASSWORD": "correct horse battery staple"}

    await deploy_and_stop(name, image, env, log_dir, amqp_url, topology)


def test_the_dockerfile_installs_the_runtime_lock_and_copies_only_the_code() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copies = [
        line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ") and "--from" not in line
    ]

    assert copies == [["requirements.lock"], ["shared"], ["services"], ["alembic.ini"]]
    assert "--require-hashes" in dockerfile
    assert "requirements-dev.lock" not in dockerfile
    assert "\nUSER luster\n" in dockerfile
