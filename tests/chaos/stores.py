"""What a scenario's services left in storage, read the same way on local disk and in a bucket.

    Stored (protocol)
    ├── OnDisk     UPLOADS_DIR and OUTPUTS_DIR: entries of the directories, temporary files included
    └── InBucket   STORAGE=s3: objects under <S3_PREFIX>uploads/ and outputs/, and unfinished multipart uploads

The verdict counts outputs through it; the drain waits until no write is left unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.storage.local import TEMPORARY_SUFFIX
from tests.s3 import s3_client

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


class Stored(Protocol):
    async def outputs(self) -> set[str]:
        """Every output entry: finished objects, and on disk the temporary files of writes too."""

    async def uploads(self) -> set[str]: ...

    async def unfinished_outputs(self) -> list[str]:
        """Writes of outputs begun and neither finished nor cleared away."""

    async def unfinished_writes(self) -> list[str]:
        """Unfinished writes in either area (uploads and outputs)."""

    async def read_output(self, key: str) -> bytes: ...

    async def close(self) -> None: ...


def entries(directory: Path) -> set[str]:
    """Every entry of the directory, hidden temporary files included."""
    return {path.name for path in directory.iterdir()} if directory.exists() else set()


class OnDisk:
    def __init__(self, uploads_dir: Path, outputs_dir: Path) -> None:
        self.uploads_dir = uploads_dir
        self.outputs_dir = outputs_dir

    async def outputs(self) -> set[str]:
        return entries(self.outputs_dir)

    async def uploads(self) -> set[str]:
        return entries(self.uploads_dir)

    async def unfinished_outputs(self) -> list[str]:
        return sorted(name for name in entries(self.outputs_dir) if name.endswith(TEMPORARY_SUFFIX))

    async def unfinished_writes(self) -> list[str]:
        temporary = [name for name in entries(self.uploads_dir) if name.endswith(TEMPORARY_SUFFIX)]
        return sorted(temporary) + await self.unfinished_outputs()

    async def read_output(self, key: str) -> bytes:
        return await asyncio.to_thread((self.outputs_dir / key).read_bytes)

    async def close(self) -> None:
        pass


class InBucket:
    """The scenario's own client on the bucket the services use (the variables of tests/s3.py)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.bucket = env["S3_BUCKET"]
        self.prefix = env.get("S3_PREFIX", "")
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    async def client(self) -> S3Client:
        if self._client is None:
            self._client = await self._stack.enter_async_context(s3_client(self.env))
        return self._client

    async def _keys(self, area: str) -> set[str]:
        client, prefix = await self.client(), f"{self.prefix}{area}/"
        keys: set[str] = set()
        async for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys |= {item["Key"].removeprefix(prefix) for item in page.get("Contents", [])}
        return keys

    async def _multipart(self, area: str) -> list[str]:
        client, prefix = await self.client(), f"{self.prefix}{area}/"
        found: list[str] = []
        async for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [f"{upload['Key']} ({upload['UploadId']})" for upload in page.get("Uploads", [])]
        return found

    async def outputs(self) -> set[str]:
        return await self._keys("outputs")

    async def uploads(self) -> set[str]:
        return await self._keys("uploads")

    async def unfinished_outputs(self) -> list[str]:
        return await self._multipart("outputs")

    async def unfinished_writes(self) -> list[str]:
        return await self._multipart("uploads") + await self._multipart("outputs")

    async def read_output(self, key: str) -> bytes:
        client = await self.client()
        response = await client.get_object(Bucket=self.bucket, Key=f"{self.prefix}outputs/{key}")
        async with response["Body"] as body:
            data: bytes = await body.read()
        if len(data) != response["ContentLength"]:
            raise AssertionError(f"{key}: read {len(data)} bytes of {response['ContentLength']}")
        return data

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None


def stored_for(env: dict[str, str]) -> Stored:
    """The view of the storage the services of `env` use."""
    if env.get("STORAGE") == "s3":
        return InBucket(env)
    return OnDisk(Path(env["UPLOADS_DIR"]), Path(env["OUTPUTS_DIR"]))
