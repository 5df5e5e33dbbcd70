"""An S3-compatible bucket as a store, through aiobotocore: one client per process, both areas in one bucket.

Objects live at `<S3_PREFIX><area>/<key>`. A PutObject, and a multipart upload until its completion,
is invisible to readers, so nobody is ever served part of an object; a multipart upload whose writer
died is aborted by `remove_abandoned` (the docs also give a bucket lifecycle rule for it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import Conflict, DependencyUnavailable
from shared.settings import StorageSettings
from shared.storage import PresignedUpload, StoredObject, Stores, checked_key
from shared.telemetry.tracing import tracer

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger()

UNAVAILABLE = "the object store is unavailable; retry shortly"
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
MISSING = {"404", "NoSuchKey", "NotFound"}


@contextlib.contextmanager
def _translated(action: str, key: str) -> Iterator[None]:
    """The store's errors as ours: a missing object, a changed one, or a store that does not answer."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in MISSING:
            raise FileNotFoundError(key) from error
        if code in {"PreconditionFailed", "412"}:
            raise Conflict(f"{key} changed while it was being read; try again", field="asset_id") from error
        log.warning("storage.refused", action=action, key=key, code=code)
        raise DependencyUnavailable(UNAVAILABLE) from error
    except BotoCoreError as error:
        log.warning("storage.unavailable", action=action, key=key, error=str(error))
        raise DependencyUnavailable(UNAVAILABLE) from error


class S3Store:
    def __init__(
        self, client: S3Client, signer: S3Client, *, bucket: str, prefix: str, part_bytes: int, expires_s: int
    ) -> None:
        self._client = client
        self._signer = signer  # signs for the endpoint clients reach, which may differ from ours
        self.bucket = bucket
        self.prefix = prefix
        self.part_bytes = part_bytes
        self.expires_s = expires_s

    def object_key(self, key: str) -> str:
        return f"{self.prefix}{checked_key(key)}"

    async def put(self, key: str, data: bytes) -> None:
        span = tracer.start_as_current_span(
            "storage put", attributes={"luster.storage.key": key, "luster.bytes": len(data)}
        )
        with span, _translated("put", key):
            await self._client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)

    async def put_file(self, key: str, file: BinaryIO, size: int) -> None:
        span = tracer.start_as_current_span("storage put", attributes={"luster.storage.key": key, "luster.bytes": size})
        with span, _translated("put", key):
            await asyncio.to_thread(file.seek, 0)
            if size <= self.part_bytes:
                data = await asyncio.to_thread(file.read)
                await self._client.put_object(Bucket=self.bucket, Key=self.object_key(key), Body=data)
            else:
                await self._put_in_parts(self.object_key(key), file)

    async def _put_in_parts(self, object_key: str, file: BinaryIO) -> None:
        # One part in memory at a time; a failure aborts the upload so no part is left to bill.
        upload = await self._client.create_multipart_upload(Bucket=self.bucket, Key=object_key)
        upload_id = upload["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            while chunk := await asyncio.to_thread(file.read, self.part_bytes):
                number = len(parts) + 1
                sent = await self._client.upload_part(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"ETag": sent["ETag"], "PartNumber": number})
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                await asyncio.shield(
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
                )
            raise

    async def get(self, key: str) -> bytes:
        with tracer.start_as_current_span("storage get", attributes={"luster.storage.key": key}) as span:
            with _translated("get", key):
                response = await self._client.get_object(Bucket=self.bucket, Key=self.object_key(key))
                async with response["Body"] as body:
                    data: bytes = await body.read()
            span.set_attribute("luster.bytes", len(data))
            return data

    async def stat(self, key: str) -> StoredObject | None:
        try:
            with _translated("head", key):
                head = await self._client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except FileNotFoundError:
            return None
        return StoredObject(size=head["ContentLength"], version=head["ETag"])

    async def copy(self, source: str, target: str, *, if_version: str | None = None) -> None:
        condition = {} if if_version is None else {"CopySourceIfMatch": if_version}
        with _translated("copy", source):
            await self._client.copy_object(
                Bucket=self.bucket,
                Key=self.object_key(target),
                CopySource={"Bucket": self.bucket, "Key": self.object_key(source)},
                **condition,  # type: ignore[arg-type]
            )
        # Some S3-compatible stores ignore the copy condition; a single-part object's ETag is the MD5
        # of its bytes and survives the copy, so reading it back tells whether the copy was that version.
        copied = await self.stat(target)
        if if_version is not None and (copied is None or copied.version != if_version):
            await self.remove([target])
            raise Conflict(f"{source} changed while it was being read; try again", field="asset_id")

    async def remove(self, keys: Iterable[str]) -> None:
        objects = [{"Key": self.object_key(key)} for key in keys]
        for start in range(0, len(objects), DELETE_BATCH):
            batch = objects[start : start + DELETE_BATCH]
            with _translated("delete", batch[0]["Key"]):
                await self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": batch, "Quiet": True},  # type: ignore[typeddict-item]
                )

    async def keys_older_than(self, older_than_s: float) -> list[str]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        with _translated("list", self.prefix):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                keys += [
                    item["Key"].removeprefix(self.prefix)
                    for item in page.get("Contents", [])
                    if item["LastModified"] < cutoff
                ]
        return keys

    async def remove_abandoned(self, *, older_than_s: float) -> list[str]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        aborted: list[str] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        with _translated("list uploads", self.prefix):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] >= cutoff:
                        continue
                    with contextlib.suppress(ClientError):  # another sweeper, or the writer finishing
                        await self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted.append(upload["Key"].removeprefix(self.prefix))
        return aborted

    async def download_url(self, key: str, *, content_type: str) -> str | None:
        params = {"Bucket": self.bucket, "Key": self.object_key(key), "ResponseContentType": content_type}
        return await self._signer.generate_presigned_url("get_object", Params=params, ExpiresIn=self.expires_s)

    async def upload_form(self, key: str, *, max_bytes: int) -> PresignedUpload | None:
        # The store itself refuses a body over the cap; completion still checks every byte.
        form = await self._signer.generate_presigned_post(
            Bucket=self.bucket,
            Key=self.object_key(key),
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=self.expires_s,
        )
        return PresignedUpload(url=form["url"], fields=dict(form["fields"]), expires_s=self.expires_s)


def _client_options(settings: StorageSettings, endpoint: str | None) -> dict[str, Any]:
    credentials = {}
    if settings.aws_access_key_id is not None and settings.aws_secret_access_key is not None:
        credentials = {
            "aws_access_key_id": settings.aws_access_key_id.get_secret_value(),
            "aws_secret_access_key": settings.aws_secret_access_key.get_secret_value(),
        }
    config = AioConfig(
        signature_version="s3v4",
        # Path-style URLs work on every S3-compatible server; virtual hosts need DNS per bucket.
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=50,
    )
    return {"region_name": settings.s3_region, "endpoint_url": endpoint, "config": config, **credentials}


@contextlib.asynccontextmanager
async def open_s3_stores(settings: StorageSettings) -> AsyncIterator[Stores]:
    assert settings.s3_bucket is not None  # the settings refuse STORAGE=s3 without one
    endpoint = str(settings.s3_endpoint_url).rstrip("/") if settings.s3_endpoint_url else None
    public = str(settings.s3_public_endpoint_url).rstrip("/") if settings.s3_public_endpoint_url else endpoint
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(session.create_client("s3", **_client_options(settings, endpoint)))
        signer = client
        if public != endpoint:
            signer = await stack.enter_async_context(session.create_client("s3", **_client_options(settings, public)))

        def area(name: str) -> S3Store:
            return S3Store(
                client,
                signer,
                bucket=settings.s3_bucket or "",
                prefix=f"{settings.s3_prefix}{name}/",
                part_bytes=settings.s3_multipart_bytes,
                expires_s=settings.presigned_url_expires_s,
            )

        yield Stores(uploads=area("uploads"), outputs=area("outputs"))
