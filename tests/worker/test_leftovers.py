"""What crashes leave in storage goes, and nothing else: recorded uploads, fresh files and live writes stay."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.worker import leftovers
from shared.storage import Stores, open_stores
from shared.storage.local import LocalStore
from shared.storage.s3 import S3Store
from tests.conftest import record_asset
from tests.s3 import begin_multipart_upload, settings_on

pytestmark = pytest.mark.integration

HOUR = 3600.0


def _file(directory: Path, name: str, *, age_s: float = 0.0) -> Path:
    path = directory / name
    path.write_bytes(b"\xff\xd8 not much of a photo")
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def _left(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


async def test_uploads_no_asset_names_go_once_an_hour_old(pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]) -> None:
    uploads = storage_dirs[0]
    _file(uploads, "recorded-old.jpg", age_s=2 * HOUR)
    _file(uploads, "recorded-new.jpg")
    _file(uploads, "unrecorded-old.jpg", age_s=2 * HOUR)
    _file(uploads, "unrecorded-new.jpg", age_s=HOUR / 2)  # its INSERT may still be on its way
    (uploads / "a-directory").mkdir()
    for key in ("recorded-old.jpg", "recorded-new.jpg"):
        await record_asset(pool, key)

    await leftovers.clear_uploads(pool, LocalStore(uploads))

    assert _left(uploads) == {"recorded-old.jpg", "recorded-new.jpg", "unrecorded-new.jpg", "a-directory"}


async def test_half_written_uploads_go_and_live_writes_stay(
    pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]
) -> None:
    uploads = storage_dirs[0]
    _file(uploads, ".cut-short.jpg.k3x9.tmp", age_s=2 * HOUR)
    _file(uploads, ".being-written.jpg.p0q1.tmp")

    await leftovers.clear_uploads(pool, LocalStore(uploads))

    assert _left(uploads) == {".being-written.jpg.p0q1.tmp"}


async def test_many_unrecorded_uploads_are_checked_in_batches(
    pool: asyncpg.Pool, storage_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leftovers, "BATCH", 2)
    uploads = storage_dirs[0]
    for n in range(5):
        _file(uploads, f"orphan-{n}.jpg", age_s=2 * HOUR)
        _file(uploads, f"kept-{n}.jpg", age_s=2 * HOUR)
        await record_asset(pool, f"kept-{n}.jpg")

    removed = await leftovers.remove_unrecorded_uploads(pool, LocalStore(uploads), older_than_s=HOUR)

    assert sorted(removed) == [f"orphan-{n}.jpg" for n in range(5)]
    assert _left(uploads) == {f"kept-{n}.jpg" for n in range(5)}


async def test_half_written_outputs_go_after_the_given_age(storage_dirs: tuple[Path, Path]) -> None:
    outputs = storage_dirs[1]
    _file(outputs, ".job-1.jpg.a1b2.tmp", age_s=700)
    _file(outputs, ".job-2.jpg.c3d4.tmp", age_s=100)
    _file(outputs, "job-3.jpg", age_s=7 * HOUR)  # a finished output is never a leftover

    await leftovers.clear_outputs(LocalStore(outputs), older_than_s=600)

    assert _left(outputs) == {".job-2.jpg.c3d4.tmp", "job-3.jpg"}


@pytest.fixture
async def s3_stores(s3_env: dict[str, str], storage_dirs: tuple[Path, Path]) -> AsyncIterator[Stores]:
    settings = settings_on(s3_env)
    async with open_stores(settings) as stores:
        yield stores


async def test_on_s3_unrecorded_uploads_and_unfinished_writes_go(
    pool: asyncpg.Pool, s3_stores: Stores, s3_env: dict[str, str]
) -> None:
    uploads, outputs = s3_stores.uploads, s3_stores.outputs
    assert isinstance(uploads, S3Store) and isinstance(outputs, S3Store)
    for key in ("recorded.jpg", "unrecorded.jpg", f"{uuid.uuid4()}.incoming"):
        await uploads.put(key, b"\xff\xd8 not much of a photo")
    await record_asset(pool, "recorded.jpg")
    for store, key in ((uploads, "cut-short.jpg"), (outputs, "job-1.jpg")):
        await begin_multipart_upload(s3_env, store.object_key(key))

    await leftovers.clear_uploads(pool, uploads, older_than_s=HOUR)  # all of it is too fresh to judge
    assert len(await uploads.keys_older_than(-60)) == 3

    await leftovers.clear_uploads(pool, uploads, older_than_s=-60)
    await leftovers.clear_outputs(outputs, older_than_s=-60)

    assert await uploads.keys_older_than(-60) == ["recorded.jpg"]
    assert await uploads.remove_abandoned(older_than_s=-60) == []
    assert await outputs.remove_abandoned(older_than_s=-60) == []
