"""Where an upload waits while it is checked and stored: in memory, within a budget the api's requests share,
else in a temporary file.

A photo held in memory is written once, to the store; one that waits on disk is written there first, read
back for the check and read again for the store, in a thread hop per chunk: for a 2 MB photo that was a third
of the api's CPU. The budget (UPLOAD_MEMORY_BYTES) bounds what every upload under way holds in memory
together, however many arrive at once: past it, an upload continues on disk.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from typing import BinaryIO


class MemoryBudget:
    """Bytes of uploads this process may hold in memory at once, lent chunk by chunk."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lent = 0

    def borrow(self, size: int) -> bool:
        if self.lent + size > self.capacity:
            return False
        self.lent += size
        return True

    def give_back(self, size: int) -> None:
        self.lent -= size


class Spool:
    """One upload's bytes: in memory while the budget lends them, then in a temporary file (all of them)."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self._borrowed = 0
        self._memory: io.BytesIO | None = io.BytesIO()
        self._disk: io.BufferedRandom | None = None

    async def write(self, chunk: bytes) -> None:
        if self._memory is not None and self._budget.borrow(len(chunk)):
            self._borrowed += len(chunk)
            self._memory.write(chunk)
            return
        if self._memory is not None:  # past the budget: everything so far, and the rest, on disk
            # The thread gets bytes of its own: a request cancelled meanwhile closes the memory under it.
            self._disk = await asyncio.to_thread(_temporary_file_holding, self._memory.getvalue())
            self._memory.close()
            self._memory = None
            self._give_back()
        assert self._disk is not None
        await asyncio.to_thread(self._disk.write, chunk)

    def contents(self) -> bytes | io.BufferedRandom:
        """What a thread may read while the request waits: the bytes held in memory (a reference of its own,
        which a request cancelled meanwhile cannot close under it), or the file on disk."""
        if self._memory is not None:
            return self._memory.getvalue()
        assert self._disk is not None
        return self._disk

    def file(self) -> BinaryIO:
        """What was written, open at its start."""
        written = self._disk or self._memory
        assert written is not None
        written.seek(0)
        return written

    def close(self) -> None:
        for file in (self._memory, self._disk):
            if file is not None:
                file.close()
        self._give_back()

    def _give_back(self) -> None:
        self._budget.give_back(self._borrowed)
        self._borrowed = 0


def _temporary_file_holding(data: bytes) -> io.BufferedRandom:
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the spool owns it; its close() closes it
    file.write(data)
    return file
