"""File storage for originals and outputs: atomic writes under one root, off the event loop."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from shared.tracing import tracer

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


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

    @staticmethod
    def _write_atomically(target: Path, data: bytes) -> None:
        # Write beside the target and rename over it: readers see the old file or the whole new
        # one, and a redo of the same job replaces its output instead of adding another.
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
