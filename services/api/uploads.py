"""Receiving image uploads: stream with a byte cap, recognise the format from the bytes, store under a new key.

An upload is spooled (services/api/spool.py): in memory within the budget every upload under way shares,
past it in a temporary file, so uploads arriving together hold no more than UPLOAD_MEMORY_BYTES in memory.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import asyncpg
from aiohttp import BodyPartReader

from services.api.settings import ApiSettings
from services.api.spool import MemoryBudget, Spool
from shared.assets import Asset, insert_asset
from shared.errors import InvalidField, PayloadTooLarge, UnsupportedImage
from shared.imaging import ALLOWED_FORMATS, ImageInfo, probe, sniff_format
from shared.storage import Store

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CHUNK_BYTES = 64 * 1024
MAX_NAME_LENGTH = 255
# Control, format (bidi overrides, zero-width) and surrogate (undecodable bytes) characters: invisible
# or misleading on screen, and NUL or lone surrogates are more than PostgreSQL text can hold.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs"})
_PATH_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class Upload:
    """A received file, open at its start; the caller closes it."""

    file: BinaryIO
    size: int
    filename: str | None
    sha256: str
    spool: Spool | None = None  # what holds `file` when it was received: closing it gives its memory back

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
        else:
            self.file.close()

    @classmethod
    def of_bytes(cls, data: bytes, filename: str | None = None) -> Upload:
        return cls(io.BytesIO(data), len(data), filename, hashlib.sha256(data).hexdigest())


async def read_file_part(part: BodyPartReader, *, max_bytes: int, memory: MemoryBudget) -> Upload:
    """Read a multipart file part, counting bytes ourselves: client_max_size does not cover streamed parts."""
    spool = Spool(memory)
    size = 0
    digest = hashlib.sha256()
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"file is larger than the {max_bytes} byte limit", field="file")
            digest.update(chunk)
            await spool.write(chunk)
        if size == 0:
            raise InvalidField("file is empty", field="file")
    except BaseException:
        spool.close()
        raise
    return Upload(spool.file(), size, part.filename, digest.hexdigest(), spool)


def display_name(filename: str | None) -> str | None:
    """The client's file name, kept for display only: its last path component, printable, bounded."""
    base = _PATH_SEPARATORS.split(filename or "")[-1][: 4 * MAX_NAME_LENGTH]
    cleaned = "".join(char for char in base if unicodedata.category(char) not in _UNPRINTABLE).strip()
    return cleaned[:MAX_NAME_LENGTH] or None


@dataclass(frozen=True)
class DecodeLimits:
    """What decoding one api instance allows: how many at once, and the caps checked from the header.

    One semaphore per app: a decode holds up to max_pixels x 4 bytes, so their number bounds memory.
    """

    slots: asyncio.Semaphore
    max_pixels: int
    max_side: int
    max_aspect_ratio: float

    @classmethod
    def of(cls, settings: ApiSettings) -> DecodeLimits:
        return cls(
            asyncio.Semaphore(settings.max_concurrent_decodes),
            settings.max_image_pixels,
            settings.max_image_side,
            settings.max_image_aspect_ratio,
        )


async def check_image(file: BinaryIO, limits: DecodeLimits) -> ImageInfo:
    """Recognise and check the image (off the event loop): only a whole, accepted image passes."""
    head = await asyncio.to_thread(_head, file)
    if sniff_format(head) is None:
        allowed = ", ".join(sorted(ALLOWED_FORMATS.values()))
        raise UnsupportedImage(f"file is not an image we accept ({allowed})", field="file", code="unsupported_format")
    work = functools.partial(
        probe,
        file,
        max_pixels=limits.max_pixels,
        max_side=limits.max_side,
        max_aspect_ratio=limits.max_aspect_ratio,
    )
    return await run_bounded(limits.slots, work)


async def run_bounded(slots: asyncio.Semaphore, work: Callable[[], ImageInfo]) -> ImageInfo:
    """Run `work` in a thread while holding a slot, until the thread ends, even if the caller is cancelled."""
    await slots.acquire()
    try:
        future = asyncio.get_running_loop().run_in_executor(None, work)
    except BaseException:
        slots.release()
        raise
    future.add_done_callback(lambda _: slots.release())
    # A cancelled request must not free the slot while its thread still decodes: shield the thread's future.
    return await asyncio.shield(future)


def _head(file: BinaryIO) -> bytes:
    file.seek(0)
    head = file.read(32)
    file.seek(0)
    return head


def stored_key(asset_id: uuid.UUID, info: ImageInfo) -> str:
    return f"{asset_id}.{EXTENSIONS[info.format]}"


async def store_asset(pool: asyncpg.Pool, storage: Store, upload: Upload, *, owner: str, limits: DecodeLimits) -> Asset:
    """Check the image, store the bytes under a generated key, then record the asset as `owner`'s."""
    return await store_checked(pool, storage, upload, await check_image(upload.file, limits), owner=owner)


async def store_checked(pool: asyncpg.Pool, storage: Store, upload: Upload, info: ImageInfo, *, owner: str) -> Asset:
    """Store an image check_image has passed, then record the asset as `owner`'s."""
    asset_id = uuid.uuid4()
    key = stored_key(asset_id, info)
    await storage.put_file(key, upload.file, upload.size)
    return await record(pool, asset_id, info, upload, key, owner=owner)


async def record(
    pool: asyncpg.Pool, asset_id: uuid.UUID, info: ImageInfo, upload: Upload, key: str, *, owner: str
) -> Asset:
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
        owner=owner,
    )
