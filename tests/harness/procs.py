"""What /proc says of a process: whether it runs, its parent, its children."""

from __future__ import annotations

from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state first), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name, in parentheses, may hold spaces and parentheses of its own: the last ")" ends it.
    return stat.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """The process runs (a zombie nobody reaped yet does not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def parent(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, read from every process's stat (not every kernel has
    /proc/<pid>/task/<tid>/children)."""
    return [
        int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and parent(int(entry.name)) == pid
    ]
