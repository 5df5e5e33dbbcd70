"""Uploads held in memory within the shared budget, on disk past it, every byte kept either way."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiohttp import FormData

from services.api import keys, uploads
from services.api.spool import MemoryBudget, Spool
from tests.worker.photos import encode, house

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import ApiFactory

CHUNK = bytes(range(256)) * 256  # 64 KiB, every byte value


async def _spooled(spool: Spool, chunks: int) -> bytes:
    written = b""
    for n in range(chunks):
        chunk = CHUNK[n:] + CHUNK[:n]
        await spool.write(chunk)
        written += chunk
    return written


async def test_an_upload_within_the_budget_stays_in_memory_and_gives_it_back_when_closed() -> None:
    budget = MemoryBudget(4 * len(CHUNK))
    spool = Spool(budget)

    written = await _spooled(spool, 3)

    assert isinstance(spool.file(), io.BytesIO)
    assert spool.file().read() == written
    assert budget.lent == len(written)
    spool.close()
    assert budget.lent == 0


async def test_an_upload_past_the_budget_moves_to_disk_whole_and_gives_the_memory_back() -> None:
    budget = MemoryBudget(2 * len(CHUNK))
    spool = Spool(budget)

    written = await _spooled(spool, 5)

    on_disk = spool.file()
    assert not isinstance(on_disk, io.BytesIO)
    assert on_disk.fileno() >= 0
    assert on_disk.read() == written
    assert budget.lent == 0
    spool.close()
    assert budget.lent == 0 and on_disk.closed


async def test_uploads_under_way_share_one_budget() -> None:
    budget = MemoryBudget(3 * len(CHUNK))
    first, second, third = Spool(budget), Spool(budget), Spool(budget)

    await _spooled(first, 2)
    second_bytes = await _spooled(second, 2)  # one chunk left in the budget: the second goes to disk
    first.close()
    await _spooled(third, 3)  # the first's memory is back

    assert not isinstance(second.file(), io.BytesIO) and second.file().read() == second_bytes
    assert isinstance(third.file(), io.BytesIO)
    assert budget.lent == 3 * len(CHUNK)
    second.close()
    third.close()
    assert budget.lent == 0


async def test_a_budget_of_nothing_puts_every_upload_on_disk() -> None:
    spool = Spool(MemoryBudget(0))

    written = await _spooled(spool, 1)

    assert not isinstance(spool.file(), io.BytesIO) and spool.file().read() == written
    spool.close()


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
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 MB photo's sha256 is a millisecond of CPU: on the loop's thread, no other request is served meanwhile."""
    hashed_on: list[str] = []
    digest = uploads._sha256

    def recording(contents: bytes | io.BufferedRandom) -> str:
        hashed_on.append(threading.current_thread().name)
        return digest(contents)

    monkeypatch.setattr(uploads, "_sha256", recording)
    api: Client = await api_factory()
    form = FormData()
    form.add_field("file", _camera_sized_jpeg(), filename="front.jpg", content_type="image/jpeg")

    response = await api.post("/assets", data=form)

    assert response.status == 201, await response.text()
    assert len(hashed_on) == 1 and hashed_on[0].startswith("image-check"), hashed_on


def _camera_sized_jpeg() -> bytes:
    """A JPEG of several hundred kB: many chunks, so a small budget is passed part-way through."""
    return encode(house(1600, 1200))
