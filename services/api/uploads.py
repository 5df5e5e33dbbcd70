"""Receiving image uploads: stream with a byte cap, recognise the format from the bytes, store under a new key."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass

import asyncpg
from aiohttp import BodyPartReader

from shared.assets import Asset, insert_asset
from shared.errors import InvalidField, PayloadTooLarge, UnsupportedImage
from shared.imaging import ALLOWED_FORMATS, probe, sniff_format
from shared.storage import LocalStorage

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None
    sha256: str


async def read_file_part(part: BodyPartReader, *, max_bytes: int) -> Upload:
    """Read a multipart file part, counting bytes ourselves: client_max_size does not cover streamed parts."""
    chunks: list[bytes] = []
    size = 0
    digest = hashlib.sha256()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"file is larger than the {max_bytes} byte limit", field="file")
        digest.update(chunk)
        chunks.append(chunk)
    if size == 0:
        raise InvalidField("file is empty", field="file")
    return Upload(b"".join(chunks), part.filename, digest.hexdigest())


def display_name(filename: str | None) -> str | None:
    """The client's file name, kept for display only, without what PostgreSQL text cannot hold."""
    # Bytes that are not UTF-8 arrive as lone surrogates, which asyncpg cannot encode: drop them.
    cleaned = (filename or "").encode("utf-8", "ignore").decode()
    return cleaned[:255] or None


async def store_asset(pool: asyncpg.Pool, storage: LocalStorage, upload: Upload, *, max_pixels: int) -> Asset:
    """Check the image, store the bytes under a generated key, then record the asset."""
    if sniff_format(upload.data[:32]) is None:
        allowed = ", ".join(sorted(ALLOWED_FORMATS.values()))
        raise UnsupportedImage(f"file is not an image we accept ({allowed})", field="file", code="unsupported_format")
    info = await asyncio.get_running_loop().run_in_executor(None, lambda: probe(upload.data, max_pixels=max_pixels))
    asset_id = uuid.uuid4()
    key = f"{asset_id}.{EXTENSIONS[info.format]}"
    await storage.put(key, upload.data)
    return await insert_asset(
        pool,
        asset_id=asset_id,
        filename=display_name(upload.filename),
        content_type=info.content_type,
        size_bytes=len(upload.data),
        width=info.width,
        height=info.height,
        sha256=upload.sha256,
        storage_key=key,
    )
