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
from concurrent.futures import Executor, ThreadPoolExecutor
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


async def read_file_part(part: BodyPartReader, *, max_bytes: int, memory: MemoryBudget, threads: Executor) -> Upload:
    """Read a multipart file part, counting bytes ourselves: client_max_size does not cover streamed parts.

    The digest is taken on one of `threads` once the whole file is here (Spool.seal): a 2 MB photo's is 1.1 ms
    of CPU, which hashed chunk by chunk as they arrived was the event loop's own thread, serving no other
    request meanwhile (at the 120 photos a second of 64 uploads under way, an eighth of the loop's time).
    """
    spool = Spool(memory)
    size = 0
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"file is larger than the {max_bytes} byte limit", field="file")
            await spool.write(chunk)
        if size == 0:
            raise InvalidField("file is empty", field="file")
        sha256 = await spool.seal(threads)
    except BaseException:
        spool.close()
        raise
    return Upload(spool.file(), size, part.filename, sha256, spool)


def display_name(filename: str | None) -> str | None:
    """The client's file name, kept for display only: its last path component, printable, bounded."""
    base = _PATH_SEPARATORS.split(filename or "")[-1][: 4 * MAX_NAME_LENGTH]
    cleaned = "".join(char for char in base if unicodedata.category(char) not in _UNPRINTABLE).strip()
    return cleaned[:MAX_NAME_LENGTH] or None


@dataclass(frozen=True)
class DecodeLimits:
    """Where one api instance checks images, and the caps checked from the header.

    Checks (and uploads' digests) run on threads of their own, as many as may decode at once: a decode holds
    up to max_pixels x 4 bytes, so their number bounds memory. Not the default executor's: there storage
    writes wait out their fsyncs (tens of milliseconds each under load), and a check queued behind them held
    up every upload after it (measured: 0.46 s a check at 64 connections, for 1 ms of work).
    """

    threads: ThreadPoolExecutor
    max_pixels: int
    max_side: int
    max_aspect_ratio: float

    @classmethod
    def of(cls, settings: ApiSettings) -> DecodeLimits:
        return cls(
            ThreadPoolExecutor(settings.max_concurrent_decodes, thread_name_prefix="image-check"),
            settings.max_image_pixels,
            settings.max_image_side,
            settings.max_image_aspect_ratio,
        )

    def close(self) -> None:
        """Checks not begun are dropped; those under way end on their threads, their results unread."""
        self.threads.shutdown(wait=False, cancel_futures=True)


async def check_image(file: BinaryIO, limits: DecodeLimits) -> ImageInfo:
    """Recognise and check the image on a check thread: only a whole, accepted image passes.

    A request cancelled while its check runs leaves it to finish on its thread, so the threads' number
    bounds the decodes under way, whether anyone still waits for them or not.
    """
    work = functools.partial(
        _check,
        file,
        max_pixels=limits.max_pixels,
        max_side=limits.max_side,
        max_aspect_ratio=limits.max_aspect_ratio,
    )
    return await asyncio.get_running_loop().run_in_executor(limits.threads, work)


def _check(file: BinaryIO, *, max_pixels: int, max_side: int, max_aspect_ratio: float) -> ImageInfo:
    file.seek(0)
    head = file.read(32)
    file.seek(0)
    if sniff_format(head) is None:
        allowed = ", ".join(sorted(ALLOWED_FORMATS.values()))
        raise UnsupportedImage(f"file is not an image we accept ({allowed})", field="file", code="unsupported_format")
    return probe(file, max_pixels=max_pixels, max_side=max_side, max_aspect_ratio=max_aspect_ratio)


def stored_key(asset_id: uuid.UUID, info: ImageInfo) -> str:
    return f"{asset_id}.{EXTENSIONS[info.format]}"


async def store_asset(
    pool: asyncpg.Pool, storage: Store, upload: Upload, *, owner: str, limits: DecodeLimits, job_follows: bool = False
) -> Asset:
    """Check the image, store the bytes under a generated key, then record the asset as `owner`'s.

    `job_follows`: the request commits a job for it next (see insert_asset).
    """
    info = await check_image(upload.file, limits)
    return await store_checked(pool, storage, upload, info, owner=owner, job_follows=job_follows)


async def store_checked(
    pool: asyncpg.Pool, storage: Store, upload: Upload, info: ImageInfo, *, owner: str, job_follows: bool = False
) -> Asset:
    """Store an image check_image has passed, then record the asset as `owner`'s."""
    asset_id = uuid.uuid4()
    key = stored_key(asset_id, info)
    await storage.put_file(key, upload.file, upload.size)
    return await record(pool, asset_id, info, upload, key, owner=owner, job_follows=job_follows)


async def record(
    pool: asyncpg.Pool,
    asset_id: uuid.UUID,
    info: ImageInfo,
    upload: Upload,
    key: str,
    *,
    owner: str,
    job_follows: bool = False,
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
        job_follows=job_follows,
    )
