"""The storage contract, run against both backends: local directories and a real S3-compatible server."""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from shared.errors import Conflict
from shared.settings import StorageSettings
from shared.storage import Store, open_stores
from shared.storage.local import TEMPORARY_SUFFIX, LocalStore
from shared.storage.s3 import S3Store
from tests.s3 import begin_multipart_upload

MIB = 1024 * 1024
PART = 5 * MIB
# moto dates every multipart upload 2010-11-10, so "not old enough" must reach back past that on both backends.
THIRTY_YEARS_S = 30 * 365 * 24 * 3600.0


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The uploads area of a fresh store; S3 uploads in parts above 5 MiB, the smallest S3 allows."""
    overrides: dict[str, Any] = {"uploads_dir": tmp_path / "uploads", "outputs_dir": tmp_path / "outputs"}
    if request.param == "s3":
        env = request.getfixturevalue("s3_env")
        overrides |= {name.lower(): value for name, value in env.items()} | {"s3_multipart_bytes": PART}
    async with open_stores(StorageSettings(**overrides)) as stores:
        yield stores.uploads


class Reader(io.BytesIO):
    """A file that remembers its largest single read, and can fail part of the way through."""

    def __init__(self, data: bytes, *, fail_after: int | None = None) -> None:
        super().__init__(data)
        self.largest_read = 0
        self.fail_after = fail_after

    def read(self, size: int | None = -1, /) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise OSError("the disk under the spooled upload went away")
        chunk = super().read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


class Abandon(Protocol):
    async def __call__(self, key: str) -> None: ...


@pytest.fixture
def abandon_a_write(store: Store, request: pytest.FixtureRequest) -> Abandon:
    """What a writer killed mid-way leaves behind on the store's backend (on S3, through a client of our own)."""
    env = request.getfixturevalue("s3_env") if isinstance(store, S3Store) else {}

    async def abandon(key: str) -> None:
        if isinstance(store, LocalStore):
            leftover = store.root / f".{key}.x1y2{TEMPORARY_SUFFIX}"
            leftover.write_bytes(b"half")
            os.utime(leftover, (time.time() - 3600, time.time() - 3600))
        else:
            assert isinstance(store, S3Store)
            await begin_multipart_upload(env, store.object_key(key))

    return abandon


async def test_what_is_put_is_got(store: Store) -> None:
    await store.put("a.jpg", b"listing photo")

    assert await store.get("a.jpg") == b"listing photo"
    found = await store.stat("a.jpg")
    assert found is not None and found.size == len(b"listing photo")


async def test_a_second_put_replaces_the_first(store: Store) -> None:
    await store.put("job.jpg", b"first attempt")
    first = await store.stat("job.jpg")
    await store.put("job.jpg", b"the redo")

    assert await store.get("job.jpg") == b"the redo"
    assert await store.stat("job.jpg") != first


async def test_a_missing_key_is_file_not_found(store: Store) -> None:
    with pytest.raises(FileNotFoundError):
        await store.get("missing.jpg")
    assert await store.stat("missing.jpg") is None


@pytest.mark.parametrize("key", ["../escape.jpg", ".hidden", "a/b.jpg", "", "x" * 300])
async def test_unsafe_keys_are_refused(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="unsafe storage key"):
        await store.put(key, b"data")


async def test_a_large_file_goes_up_a_part_at_a_time(store: Store) -> None:
    data = os.urandom(2 * PART + MIB)
    reader = Reader(data)

    await store.put_file("big.jpg", reader, len(data))

    assert await store.get("big.jpg") == data
    assert 0 < reader.largest_read <= PART


async def test_a_small_file_is_put_whole(store: Store) -> None:
    reader = Reader(b"small photo")
    reader.seek(5)  # put_file always starts from the beginning

    await store.put_file("small.jpg", reader, 11)

    assert await store.get("small.jpg") == b"small photo"


async def test_a_write_that_fails_half_way_leaves_nothing(store: Store) -> None:
    data = os.urandom(2 * PART + MIB)

    with pytest.raises(OSError, match="went away"):
        await store.put_file("broken.jpg", Reader(data, fail_after=PART + 1), len(data))

    assert await store.stat("broken.jpg") is None
    assert await store.remove_abandoned(older_than_s=-60) == []  # not even an unfinished upload


async def test_abandoned_writes_are_removed_once_old_enough(store: Store, abandon_a_write: Abandon) -> None:
    await abandon_a_write("killed.jpg")

    assert await store.remove_abandoned(older_than_s=THIRTY_YEARS_S) == []
    removed = await store.remove_abandoned(older_than_s=-60)

    assert len(removed) == 1 and "killed.jpg" in removed[0]
    assert await store.remove_abandoned(older_than_s=-60) == []


async def test_keys_are_listed_by_age_and_removed_in_batches(store: Store, abandon_a_write: Abandon) -> None:
    for name in ("one.jpg", "two.jpg", "three.jpg"):
        await store.put(name, b"x")
    await abandon_a_write("four.jpg")

    assert await store.keys_older_than(3600) == []
    assert sorted(await store.keys_older_than(-60)) == ["one.jpg", "three.jpg", "two.jpg"]

    await store.remove(["one.jpg", "two.jpg", "never-there.jpg"])

    assert await store.keys_older_than(-60) == ["three.jpg"]


async def test_a_copy_of_the_checked_version_is_taken(store: Store) -> None:
    await store.put("incoming", b"checked bytes")
    checked = await store.stat("incoming")
    assert checked is not None

    await store.copy("incoming", "final.jpg", if_version=checked.version)

    assert await store.get("final.jpg") == b"checked bytes"


async def test_a_copy_of_a_version_that_changed_is_refused(store: Store) -> None:
    await store.put("incoming", b"checked bytes")
    checked = await store.stat("incoming")
    assert checked is not None
    if isinstance(store, LocalStore):  # a rewrite within the same clock tick keeps the mtime
        os.utime(store.path("incoming"), ns=(1, 1))
    await store.put("incoming", b"swapped after the check")

    with pytest.raises(Conflict):
        await store.copy("incoming", "final.jpg", if_version=checked.version)
    assert await store.stat("final.jpg") is None


async def test_s3_hands_out_urls_that_bypass_the_api(store: Store) -> None:
    if isinstance(store, LocalStore):
        assert await store.download_url("a.jpg", content_type="image/jpeg") is None
        assert await store.upload_form("a.jpg", max_bytes=100) is None
        return
    form = await store.upload_form("direct", max_bytes=MIB)
    assert form is not None
    body = aiohttp.FormData(form.fields)
    body.add_field("file", b"straight to the bucket", filename="photo.jpg")
    async with aiohttp.ClientSession() as session:
        async with session.post(form.url, data=body) as response:
            assert response.status in {200, 204}, await response.text()
        url = await store.download_url("direct", content_type="image/jpeg")
        assert url is not None
        async with session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/jpeg"
            assert await response.read() == b"straight to the bucket"
