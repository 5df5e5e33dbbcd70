"""POST /assets against the real app, PostgreSQL and file storage: what is stored and what is answered."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from aiohttp import FormData

from tests.worker.photos import encode, house, orientation_exif, room

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import Uploader

pytestmark = pytest.mark.integration


async def test_upload_answers_201_with_the_asset(
    api: Client, photo: bytes, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]
) -> None:
    form = FormData()
    form.add_field("file", photo, filename="front.jpg", content_type="image/jpeg")

    response = await api.post("/assets", data=form)

    assert response.status == 201, await response.text()
    asset = (await response.json())["asset"]
    assert uuid.UUID(asset["id"])
    assert response.headers["Location"] == f"/assets/{asset['id']}"
    assert asset["size"] == len(photo)
    assert (asset["width"], asset["height"]) == (400, 300)
    assert asset["content_type"] == "image/jpeg"
    assert asset["sha256"] == hashlib.sha256(photo).hexdigest()
    row = await pool.fetchrow("SELECT * FROM assets WHERE id = $1", uuid.UUID(asset["id"]))
    assert row is not None
    assert row["filename"] == "front.jpg"
    assert (storage_dirs[0] / row["storage_key"]).read_bytes() == photo


@pytest.mark.parametrize(
    ("fmt", "content_type", "declared_type", "declared_name"),
    [
        ("JPEG", "image/jpeg", "image/png", "photo.png"),
        ("PNG", "image/png", "image/jpeg", "photo.jpg"),
        ("WEBP", "image/webp", "application/octet-stream", "photo.gif"),
        ("PNG", "image/png", "text/plain", "notes.txt"),
    ],
)
async def test_the_format_is_recognised_from_the_bytes_not_the_declared_type(
    upload: Uploader, fmt: str, content_type: str, declared_type: str, declared_name: str
) -> None:
    data = encode(room(320, 200), fmt)

    asset = await upload(data, filename=declared_name, content_type=declared_type)

    assert asset["content_type"] == content_type
    assert (asset["width"], asset["height"]) == (320, 200)
    assert asset["size"] == len(data)


async def test_the_file_is_stored_under_a_generated_key_never_the_client_name(
    upload: Uploader, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]
) -> None:
    uploads = storage_dirs[0]
    hostile = "../../outside/evil name.jpg"

    asset = await upload(encode(house(200, 150), "PNG"), filename=hostile)

    key = await pool.fetchval("SELECT storage_key FROM assets WHERE id = $1", uuid.UUID(asset["id"]))
    assert key == f"{asset['id']}.png"
    assert [path.name for path in uploads.iterdir()] == [key]
    assert not (uploads.parent.parent / "outside").exists()


async def test_width_and_height_are_as_displayed_after_exif_orientation(upload: Uploader) -> None:
    # Stored 400x300 with "turn a quarter": viewers (and the engine) see a 300x400 portrait.
    asset = await upload(encode(house(400, 300), exif=orientation_exif(6)))

    assert (asset["width"], asset["height"]) == (300, 400)


async def test_every_upload_is_a_new_asset(upload: Uploader, pool: asyncpg.Pool, photo: bytes) -> None:
    first = await upload(photo)
    second = await upload(photo)

    assert first["id"] != second["id"]
    assert await pool.fetchval("SELECT count(*) FROM assets") == 2


@pytest.mark.parametrize(
    ("sent", "kept"),
    [(b"\xff\xfefront.jpg", "front.jpg"), ("caf\u00e9.jpg".encode(), "caf\u00e9.jpg")],
    ids=["not UTF-8", "UTF-8"],
)
async def test_an_unstorable_file_name_is_cleaned_not_a_crash(
    api: Client, photo: bytes, pool: asyncpg.Pool, sent: bytes, kept: str
) -> None:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + sent + b'"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + photo + b"\r\n--b--\r\n"
    )

    response = await api.post("/assets", data=body, headers={"Content-Type": "multipart/form-data; boundary=b"})

    assert response.status == 201, await response.text()
    asset_id = uuid.UUID((await response.json())["asset"]["id"])
    assert await pool.fetchval("SELECT filename FROM assets WHERE id = $1", asset_id) == kept
