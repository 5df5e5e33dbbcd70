"""What /proc says of a process: whether it runs, its parent, the processes under it."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state first, at index 0), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name, in parentheses, may hold spaces and parentheses of its own: the last ")" ends it.
    return stat.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """The process runs (a zombie nobody reaped yet does not)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def parent(pid: int) -> int | None:
    fields = stat_fields(pid)
    return None if fields is None else int(fields[1])


def _children_of_every_process() -> dict[int, list[int]]:
    """One pass over /proc (not every kernel has /proc/<pid>/task/<tid>/children)."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (above := parent(int(entry.name))) is not None:  # None: ended since
            found.setdefault(above, []).append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    return _children_of_every_process().get(pid, [])


def descendants(pid: int) -> list[int]:
    """Every process under `pid`: its children, theirs, and so on."""
    tree = _children_of_every_process()
    found: list[int] = []
    unvisited = list(tree.get(pid, ()))
    while unvisited:
        process = unvisited.pop()
        found.append(process)
        unvisited.extend(tree.get(process, ()))
    return found
