"""Uploads held in memory within the shared budget, on disk past it, every byte kept either way."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiohttp import FormData

from services.api import keys, spool
from services.api.spool import MemoryBudget, Spool
from tests.worker.photos import encode, house

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import ApiFactory

CHUNK = bytes(range(256)) * 256  # 64 KiB, every byte value


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1, thread_name_prefix="image-check") as executor:
        yield executor


async def _spooled(spool: Spool, chunks: int, threads: ThreadPoolExecutor) -> bytes:
    """Write `chunks` chunks and seal the spool, checking the digest it gives; what was written."""
    written = b""
    for n in range(chunks):
        chunk = CHUNK[n:] + CHUNK[:n]
        await spool.write(chunk)
        written += chunk
    assert await spool.seal(threads) == hashlib.sha256(written).hexdigest()
    return written


async def test_an_upload_within_the_budget_stays_in_memory_and_gives_it_back_when_closed(
    threads: ThreadPoolExecutor,
) -> None:
    budget = MemoryBudget(4 * len(CHUNK))
    spool = Spool(budget)

    written = await _spooled(spool, 3, threads)

    assert isinstance(spool.file(), io.BytesIO)
    assert spool.file().read() == written
    assert budget.lent == len(written)
    spool.close()
    assert budget.lent == 0


async def test_an_upload_past_the_budget_moves_to_disk_whole_and_gives_the_memory_back(
    threads: ThreadPoolExecutor,
) -> None:
    budget = MemoryBudget(2 * len(CHUNK))
    spool = Spool(budget)

    written = await _spooled(spool, 5, threads)

    on_disk = spool.file()
    assert not isinstance(on_disk, io.BytesIO)
    assert on_disk.fileno() >= 0
    assert on_disk.read() == written
    assert budget.lent == 0
    spool.close()
    assert budget.lent == 0 and on_disk.closed


async def test_uploads_under_way_share_one_budget(threads: ThreadPoolExecutor) -> None:
    budget = MemoryBudget(3 * len(CHUNK))
    first, second, third = Spool(budget), Spool(budget), Spool(budget)

    await _spooled(first, 2, threads)
    second_bytes = await _spooled(second, 2, threads)  # one chunk left in the budget: the second goes to disk
    first.close()
    await _spooled(third, 3, threads)  # the first's memory is back

    assert not isinstance(second.file(), io.BytesIO) and second.file().read() == second_bytes
    assert isinstance(third.file(), io.BytesIO)
    assert budget.lent == 3 * len(CHUNK)
    second.close()
    third.close()
    assert budget.lent == 0


async def test_a_budget_of_nothing_puts_every_upload_on_disk(threads: ThreadPoolExecutor) -> None:
    spool = Spool(MemoryBudget(0))

    written = await _spooled(spool, 1, threads)

    assert not isinstance(spool.file(), io.BytesIO) and spool.file().read() == written
    spool.close()


@pytest.fixture
def joined_on(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that joined and digested an upload held in memory."""
    names: list[str] = []
    join = spool._joined_with_digest

    def recording(chunks: Sequence[bytes]) -> tuple[bytes, str]:
        names.append(threading.current_thread().name)
        return join(chunks)

    monkeypatch.setattr(spool, "_joined_with_digest", recording)
    return names


async def test_an_upload_held_in_memory_is_joined_once_on_the_thread_that_digests_it(
    threads: ThreadPoolExecutor, joined_on: list[str]
) -> None:
    """Chunks written into one growing buffer were copied again at every growth, on the event loop's thread."""
    held = Spool(MemoryBudget(4 * len(CHUNK)))

    written = await _spooled(held, 3, threads)

    assert len(joined_on) == 1 and joined_on[0].startswith("image-check"), joined_on
    whole = held.file()
    assert isinstance(whole, io.BytesIO) and whole.getbuffer().nbytes == len(written)
    held.close()


@pytest.mark.integration
@pytest.mark.parametrize("memory", [0, 100_000, 128 * 1024 * 1024], ids=["none", "part", "all"])
async def test_the_stored_photo_is_the_uploaded_one_wherever_it_waited(
    api_factory: ApiFactory, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path], memory: int
) -> None:
    api: Client = await api_factory(upload_memory_bytes=memory)
    photo = _camera_sized_jpeg()
    assert len(photo) > 3 * 100_000  # "part" runs out of budget part-way through
    form = FormData()
    form.add_field("file", photo, filename="front.jpg", content_type="image/jpeg")

    response = await api.post("/assets", data=form)

    assert response.status == 201, await response.text()
    asset = (await response.json())["asset"]
    assert asset["sha256"] == hashlib.sha256(photo).hexdigest()
    key = await pool.fetchval("SELECT storage_key FROM assets WHERE id = $1::uuid", asset["id"])
    assert (storage_dirs[0] / key).read_bytes() == photo
    assert api.app is not None and api.app[keys.UPLOAD_MEMORY].lent == 0


@pytest.mark.integration
async def test_the_digest_is_taken_on_a_check_thread_not_on_the_event_loop(
    api_factory: ApiFactory, joined_on: list[str]
) -> None:
    """A 2 MB photo's sha256 is a millisecond of CPU: on the loop's thread, no other request is served meanwhile."""
    api: Client = await api_factory()
    form = FormData()
    form.add_field("file", _camera_sized_jpeg(), filename="front.jpg", content_type="image/jpeg")

    response = await api.post("/assets", data=form)

    assert response.status == 201, await response.text()
    assert len(joined_on) == 1 and joined_on[0].startswith("image-check"), joined_on


def _camera_sized_jpeg() -> bytes:
    """A JPEG of several hundred kB: many chunks, so a small budget is passed part-way through."""
    return encode(house(1600, 1200))
