"""Where originals and outputs live: one interface, two backends, chosen by `STORAGE`.

    Store (protocol)
    ├── LocalStore   directories on one machine (development, a single-box deploy)
    └── S3Store      an S3-compatible bucket (R2, S3, MinIO, Railway buckets): nothing shared but the bucket

A process opens its stores once (`open_stores`) and closes them on shutdown; the two areas, uploads
and outputs, share one client. Keys are flat generated names, never a client's file name.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from shared.settings import StorageSettings

SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def checked_key(key: str) -> str:
    if not SAFE_KEY.match(key):
        raise ValueError(f"unsafe storage key {key!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    size: int
    version: str  # changes whenever the object is written again (the ETag on S3)


@dataclass(frozen=True)
class PresignedUpload:
    """A form the client POSTs the file to, straight to the store: `url`, then `fields`, then `file`."""

    url: str
    fields: dict[str, str]
    expires_s: int


class Store(Protocol):
    """One area of storage (uploads or outputs). A missing key raises FileNotFoundError."""

    async def put(self, key: str, data: bytes) -> None:
        """Store `data` whole: readers see no object or all of it, never a part."""

    async def put_file(self, key: str, file: BinaryIO, size: int) -> None:
        """Store an open file from its start, without reading it into memory at once."""

    async def get(self, key: str) -> bytes: ...

    async def stat(self, key: str) -> StoredObject | None:
        """The stored object's size and version, or None when there is none."""

    async def copy(self, source: str, target: str, *, if_version: str | None = None) -> None:
        """Copy within the area; with `if_version`, only while the source is still that version (else Conflict)."""

    async def remove(self, keys: Iterable[str]) -> None: ...

    async def keys_older_than(self, older_than_s: float) -> list[str]:
        """Finished objects (not writes in progress) last written more than `older_than_s` ago."""

    async def remove_abandoned(self, *, older_than_s: float) -> list[str]:
        """Drop the parts of writes whose writer died (temporary files, unfinished multipart uploads)."""

    async def download_url(self, key: str, *, content_type: str) -> str | None:
        """A short-lived URL the client fetches the object from directly, or None where the store has none."""

    async def upload_form(self, key: str, *, max_bytes: int) -> PresignedUpload | None:
        """A short-lived form for uploading to `key` directly, or None where the store has none."""


@dataclass(frozen=True)
class Stores:
    uploads: Store
    outputs: Store


@contextlib.asynccontextmanager
async def open_stores(settings: StorageSettings) -> AsyncIterator[Stores]:
    """The process's two storage areas, on the backend `settings.storage` names."""
    if settings.storage == "s3":
        from shared.storage.s3 import open_s3_stores  # the SDK loads only where it is used

        async with open_s3_stores(settings) as stores:
            yield stores
        return
    from shared.storage.local import LocalStore

    uploads, outputs = LocalStore(settings.uploads_dir), LocalStore(settings.outputs_dir)
    await uploads.ensure_root()
    await outputs.ensure_root()
    yield Stores(uploads=uploads, outputs=outputs)
