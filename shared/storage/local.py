"""Local directories as a store: atomic writes under one root, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from shared.errors import Conflict
from shared.storage import PresignedUpload, StoredObject, checked_key
from shared.telemetry.tracing import tracer

TEMPORARY_SUFFIX = ".tmp"  # of a write in progress, named ".<key>.<random>.tmp" beside its target
COPY_CHUNK = 1024 * 1024


class LocalStore:
    """Every service using it must see the same directory: one machine, or a disk they all mount."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def ensure_root(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / checked_key(key)

    async def put(self, key: str, data: bytes) -> None:
        with tracer.start_as_current_span(
            "storage put", attributes={"luster.storage.key": key, "luster.bytes": len(data)}
        ):
            await asyncio.to_thread(self._write_atomically, self.path(key), lambda file: file.write(data))

    async def put_file(self, key: str, file: BinaryIO, size: int) -> None:
        with tracer.start_as_current_span("storage put", attributes={"luster.storage.key": key, "luster.bytes": size}):
            file.seek(0)
            await asyncio.to_thread(
                self._write_atomically, self.path(key), lambda target: shutil.copyfileobj(file, target, COPY_CHUNK)
            )

    async def get(self, key: str) -> bytes:
        with tracer.start_as_current_span("storage get", attributes={"luster.storage.key": key}) as span:
            data = await asyncio.to_thread(self.path(key).read_bytes)
            span.set_attribute("luster.bytes", len(data))
            return data

    async def stat(self, key: str) -> StoredObject | None:
        try:
            found = await asyncio.to_thread(self.path(key).stat)
        except FileNotFoundError:
            return None
        return StoredObject(size=found.st_size, version=str(found.st_mtime_ns))

    async def copy(self, source: str, target: str, *, if_version: str | None = None) -> None:
        data = await self.get(source)
        found = await self.stat(source)
        if if_version is not None and (found is None or found.version != if_version):
            raise Conflict(f"{source} changed while it was being read; try again")
        await self.put(target, data)

    async def remove(self, keys: Iterable[str]) -> None:
        await asyncio.to_thread(self._remove, [self.path(key) for key in keys])

    async def keys_older_than(self, older_than_s: float) -> list[str]:
        return await asyncio.to_thread(self._keys_older_than, time.time() - older_than_s)

    async def remove_abandoned(self, *, older_than_s: float) -> list[str]:
        """Temporary files of writes whose writer was killed mid-way; a live write touches its file as it goes."""
        return await asyncio.to_thread(self._remove_abandoned, time.time() - older_than_s)

    async def download_url(self, key: str, *, content_type: str) -> str | None:
        return None

    async def upload_form(self, key: str, *, max_bytes: int) -> PresignedUpload | None:
        return None

    @staticmethod
    def _remove(paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    def _keys_older_than(self, cutoff: float) -> list[str]:
        keys: list[str] = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        keys.append(entry.name)
        return keys

    def _remove_abandoned(self, cutoff: float) -> list[str]:
        removed: list[str] = []
        for path in self.root.glob(f".*{TEMPORARY_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):  # another sweeper, or the writer's own rename
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path.name)
        return removed

    @staticmethod
    def _write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
        # Write beside the target and rename over it: readers see the old file or the whole new
        # one, and a redo of the same job replaces its output instead of adding another.
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX)
        try:
            with os.fdopen(descriptor, "wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
