"""The README's layout section names every module of shared/ and services/, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("shared/", "services/api/", "services/worker/", "services/monitor/")


def layout() -> dict[str, set[str]]:
    """Each code directory of the README's layout block, with the names it lists (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Layout\n\n```\n(.*?)```", text, flags=re.DOTALL)
    assert block, "README.md has no Layout code block"
    listed: dict[str, set[str]] = {}
    current = ""
    for line in block.group(1).splitlines():
        head, _, rest = line.partition(" ")
        if head:
            current = head
            listed.setdefault(current, set())
        listed[current] |= set(rest.split()) if head else set(line.split())
    return {directory: names for directory, names in listed.items() if directory in CODE_DIRS}


def expand(name: str) -> list[str]:
    """`views/{a,b}` is views/a and views/b; anything else is itself."""
    found = re.fullmatch(r"(.*/)\{(.*)\}", name)
    return [found.group(1) + part for part in found.group(2).split(",")] if found else [name]


def present(directory: Path) -> set[str]:
    """Modules (without .py) and packages (with a slash) and other source files of one directory."""
    names: set[str] = set()
    for path in directory.iterdir():
        if path.name.startswith((".", "__pycache__")) or path.name == "__init__.py":
            continue
        if path.is_dir():
            names.add(f"{path.name}/")
        else:
            names.add(path.name.removesuffix(".py"))
    return names


@pytest.mark.parametrize("directory", CODE_DIRS)
def test_the_layout_lists_exactly_the_modules_of(directory: str) -> None:
    listed = layout()[directory]
    expected = present(ROOT / directory)
    named: set[str] = set()
    for name in listed:
        for item in expand(name):
            package = item.split("/")[0] + "/" if "/" in item else None
            if package and package in expected and item != package:
                inner = item.split("/", 1)[1]
                assert inner in present(ROOT / directory / package) | {"__init__"}, f"{directory}{item} does not exist"
                named.add(package)
            else:
                named.add(item)
    assert named - expected == set(), f"listed under {directory} but not there"
    assert expected - named == set(), f"in {directory} but not in the README's layout"
    for name in listed:
        if "{" in name:
            package = name.split("/")[0]
            parts = set(name[name.index("{") + 1 : -1].split(",")) - {"__init__"}
            assert present(ROOT / directory / package) <= parts, f"{directory}{name} misses modules"
