"""File storage for originals and outputs: atomic writes under one root, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from shared.tracing import tracer

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
TEMPORARY_SUFFIX = ".tmp"  # of a write in progress, named ".<key>.<random>.tmp" beside its target


class LocalStorage:
    """Keys are flat generated names; a client's file name never reaches the file system."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key):
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        with tracer.start_as_current_span(
            "storage put", attributes={"luster.storage.key": key, "luster.bytes": len(data)}
        ):
            await asyncio.to_thread(self._write_atomically, self.path(key), data)

    async def get(self, key: str) -> bytes:
        with tracer.start_as_current_span("storage get", attributes={"luster.storage.key": key}) as span:
            data = await asyncio.to_thread(self.path(key).read_bytes)
            span.set_attribute("luster.bytes", len(data))
            return data

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).exists)

    def remove_abandoned(self, *, older_than_s: float) -> list[str]:
        """Delete the temporary files of writes that never finished (their writer was killed mid-way),
        once untouched for `older_than_s`; returns their names. A live write touches its file as it goes.
        """
        cutoff = time.time() - older_than_s
        removed: list[str] = []
        for path in self.root.glob(f".*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # another sweeper, or the writer's own rename
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path.name)
        return removed

    def keys_untouched_for(self, older_than_s: float) -> list[str]:
        """Finished files (not writes in progress) whose last change is older than `older_than_s`."""
        cutoff = time.time() - older_than_s
        keys: list[str] = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        keys.append(entry.name)
        return keys

    def remove(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    @staticmethod
    def _write_atomically(target: Path, data: bytes) -> None:
        # Write beside the target and rename over it: readers see the old file or the whole new
        # one, and a redo of the same job replaces its output instead of adding another.
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
