"""The two locks: hash-pinned, the runtime one covering pyproject's dependencies, the development one a superset."""

from __future__ import annotations

import re
import tomllib

from tests.deploy.launch import ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$", re.MULTILINE)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: str) -> dict[str, str]:
    return {_canonical(name): version for name, version in PIN.findall((ROOT / lock).read_text())}


def _declared(requirements: list[str]) -> set[str]:
    return {_canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]) for requirement in requirements}


def test_every_pin_carries_hashes() -> None:
    for lock in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / lock).read_text()
        pinned = [line for line in text.splitlines() if "==" in line and not line.lstrip().startswith("#")]

        assert pinned and all(line.endswith(" \\") for line in pinned), lock  # each pin continues with --hash lines
        assert text.count("--hash=sha256:") >= len(pinned)


def test_the_runtime_lock_covers_the_runtime_dependencies_and_nothing_of_development() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _pins("requirements.lock")

    assert _declared(project["dependencies"]) <= set(runtime)
    assert not {"pytest", "mypy", "ruff", "moto", "pip-tools", "jsonschema"} & set(runtime)


def test_the_development_lock_is_a_superset_with_the_same_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, development = _pins("requirements.lock"), _pins("requirements-dev.lock")

    assert {name: development.get(name) for name in runtime} == runtime
    assert _declared(project["optional-dependencies"]["dev"]) <= set(development)
