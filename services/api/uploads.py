"""Receiving image uploads: stream with a byte cap, recognise the format from the bytes, store under a new key.

An upload is spooled: the first SPOOL_BYTES stay in memory, the rest go to a temporary file, so a
25 MB photo costs a request no more than that in memory on its way to the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
import uuid
from dataclasses import dataclass
from typing import BinaryIO

import asyncpg
from aiohttp import BodyPartReader

from shared.assets import Asset, insert_asset
from shared.errors import InvalidField, PayloadTooLarge, UnsupportedImage
from shared.imaging import ALLOWED_FORMATS, ImageInfo, probe, sniff_format
from shared.storage import Store

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CHUNK_BYTES = 64 * 1024
SPOOL_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    """A received file, open at its start; the caller closes it."""

    file: BinaryIO
    size: int
    filename: str | None
    sha256: str

    def close(self) -> None:
        self.file.close()

    @classmethod
    def of_bytes(cls, data: bytes, filename: str | None = None) -> Upload:
        return cls(io.BytesIO(data), len(data), filename, hashlib.sha256(data).hexdigest())


async def read_file_part(part: BodyPartReader, *, max_bytes: int) -> Upload:
    """Read a multipart file part, counting bytes ourselves: client_max_size does not cover streamed parts."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - the Upload owns and closes it
    size = 0
    digest = hashlib.sha256()
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"file is larger than the {max_bytes} byte limit", field="file")
            digest.update(chunk)
            if size > SPOOL_BYTES:  # on disk from here: keep the write off the event loop
                await asyncio.to_thread(spool.write, chunk)
            else:
                spool.write(chunk)
        if size == 0:
            raise InvalidField("file is empty", field="file")
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Upload(spool, size, part.filename, digest.hexdigest())  # type: ignore[arg-type]


def display_name(filename: str | None) -> str | None:
    """The client's file name, kept for display only, without what PostgreSQL text cannot hold."""
    # Bytes that are not UTF-8 arrive as lone surrogates, which asyncpg cannot encode: drop them.
    cleaned = (filename or "").encode("utf-8", "ignore").decode()
    return cleaned[:255] or None


async def check_image(file: BinaryIO, *, max_pixels: int) -> ImageInfo:
    """Recognise and fully decode the image (off the event loop): only a whole, accepted image passes."""
    head = await asyncio.to_thread(_head, file)
    if sniff_format(head) is None:
        allowed = ", ".join(sorted(ALLOWED_FORMATS.values()))
        raise UnsupportedImage(f"file is not an image we accept ({allowed})", field="file", code="unsupported_format")
    return await asyncio.get_running_loop().run_in_executor(None, lambda: probe(file, max_pixels=max_pixels))


def _head(file: BinaryIO) -> bytes:
    file.seek(0)
    head = file.read(32)
    file.seek(0)
    return head


def stored_key(asset_id: uuid.UUID, info: ImageInfo) -> str:
    return f"{asset_id}.{EXTENSIONS[info.format]}"


async def store_asset(pool: asyncpg.Pool, storage: Store, upload: Upload, *, max_pixels: int) -> Asset:
    """Check the image, store the bytes under a generated key, then record the asset."""
    info = await check_image(upload.file, max_pixels=max_pixels)
    asset_id = uuid.uuid4()
    key = stored_key(asset_id, info)
    await storage.put_file(key, upload.file, upload.size)
    return await record(pool, asset_id, info, upload, key)


async def record(pool: asyncpg.Pool, asset_id: uuid.UUID, info: ImageInfo, upload: Upload, key: str) -> Asset:
    return await insert_asset(
        pool,
        asset_id=asset_id,
        filename=display_name(upload.filename),
        content_type=info.content_type,
        size_bytes=upload.size,
        width=info.width,
        height=info.height,
        sha256=upload.sha256,
        storage_key=key,
    )
