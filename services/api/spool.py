"""Where an upload waits while it is checked and stored: in memory, within a budget the api's requests share,
else in a temporary file.

A photo held in memory is written once, to the store; one that waits on disk is written there first, read
back for the check and read again for the store, in a thread hop per chunk: for a 2 MB photo that was a third
of the api's CPU. The budget (UPLOAD_MEMORY_BYTES) bounds what every upload under way holds in memory
together, however many arrive at once: past it, an upload continues on disk.

In memory the chunks are kept as they came and joined once, on a thread, when the upload is whole: written
into a growing buffer instead, each of 64 uploads under way was copied again and again as its buffer grew
(2.1 ms of the event loop's thread a 2 MB photo, against 1.0 ms for the one join, which also releases the
GIL while it copies).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
from collections.abc import Sequence
from concurrent.futures import Executor
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
    """One upload's bytes: in memory while the budget lends them, then in a temporary file (all of them).

    Written chunk by chunk, then sealed once it is all here; only a sealed spool has a file to read.
    """

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self._borrowed = 0
        self._chunks: list[bytes] | None = []
        self._memory: io.BytesIO | None = None
        self._disk: io.BufferedRandom | None = None

    async def write(self, chunk: bytes) -> None:
        if self._chunks is not None and self._budget.borrow(len(chunk)):
            self._borrowed += len(chunk)
            self._chunks.append(chunk)
            return
        if self._chunks is not None:  # past the budget: everything so far, and the rest, on disk
            self._disk = await asyncio.to_thread(_temporary_file_holding, self._chunks)
            self._chunks = None
            self._give_back()
        assert self._disk is not None
        await asyncio.to_thread(self._disk.write, chunk)

    async def seal(self, threads: Executor) -> str:
        """The whole upload's sha256, taken on one of `threads` (a 2 MB photo's is a millisecond of CPU, which on
        the event loop's thread would serve no other request meanwhile); held in memory, its chunks are joined
        into one there too."""
        loop = asyncio.get_running_loop()
        if self._chunks is not None:
            # A request cancelled meanwhile lets go of the chunks (close); the thread still holds them.
            whole, digest = await loop.run_in_executor(threads, _joined_with_digest, self._chunks)
            self._chunks = None
            self._memory = io.BytesIO(whole)  # shares `whole`: nothing is copied again
            return digest
        assert self._disk is not None
        return await loop.run_in_executor(threads, _file_digest, self._disk)

    def file(self) -> BinaryIO:
        """What was written, open at its start."""
        written = self._disk or self._memory
        assert written is not None, "seal the spool first"
        written.seek(0)
        return written

    def close(self) -> None:
        for file in (self._memory, self._disk):
            if file is not None:
                file.close()
        self._chunks = None
        self._give_back()

    def _give_back(self) -> None:
        self._budget.give_back(self._borrowed)
        self._borrowed = 0


def _joined_with_digest(chunks: Sequence[bytes]) -> tuple[bytes, str]:
    whole = b"".join(chunks)
    return whole, hashlib.sha256(whole).hexdigest()


def _file_digest(file: io.BufferedRandom) -> str:
    file.seek(0)
    return hashlib.file_digest(file, "sha256").hexdigest()


def _temporary_file_holding(chunks: Sequence[bytes]) -> io.BufferedRandom:
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the spool owns it; its close() closes it
    file.writelines(chunks)
    return file
