"""`AsyncLuster`: every call the client makes to the API, over one aiohttp session."""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from luster_client.config import Config
from luster_client.errors import ApiError, TransportError
from luster_client.models import (
    Asset,
    AssetEnvelope,
    AssetPage,
    Batch,
    BatchEnvelope,
    BatchPage,
    DirectUpload,
    DirectUploadEnvelope,
    Job,
    JobEnvelope,
    JobPage,
    WebhookSecretEnvelope,
)
from luster_client.retry import RetryPolicy
from luster_client.wire import (
    MAX_WAIT_S,
    Answer,
    Body,
    Output,
    Photo,
    Sink,
    api_error,
    form,
    multipart,
    parse,
    partial_path,
    prefer,
    read_photo,
    streamed_to,
    write_whole,
)

__all__ = ["MAX_WAIT_S", "AsyncLuster", "BatchJob", "Output", "Photo", "write_whole"]

TIMEOUT_S = 60.0  # beyond any wait asked for: a long poll must not time out on its own
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=TIMEOUT_S, sock_read=TIMEOUT_S)
REDIRECTS = (301, 302, 303, 307, 308)
# A job of a batch: an asset id alone, or {"asset_id", "prompt"?, "style"?, "tier"?, "webhook_url"?, …}.
BatchJob = Mapping[str, Any] | uuid.UUID | str


class AsyncLuster:
    """The API as typed async calls; use it as an async context manager (it owns an aiohttp session)."""

    def __init__(self, url: str, key: str, *, retry: RetryPolicy | None = None) -> None:
        self.url = URL(url.rstrip("/"))
        self._auth = {"Authorization": f"Bearer {key}"}
        self._retry = retry or RetryPolicy()
        self._session: aiohttp.ClientSession | None = None
        self._direct = True  # until the API says its storage takes no direct uploads

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> AsyncLuster:
        return cls(config.url, config.key, **kwargs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def upload(self, photo: Photo, *, filename: str | None = None) -> Asset:
        """Store a photo, for jobs to name by its id: straight to the object store where the API offers that,
        else through POST /assets."""
        name, data = await asyncio.to_thread(read_photo, photo, filename)
        if self._direct:
            offer = await self._offer_upload()
            if offer is not None:
                return await self._upload_direct(offer, name, data)
        answer = await self._call("POST", "/assets", lambda: {"data": form({}, name, data)}, idempotent=False)
        return parse(AssetEnvelope, answer).asset

    async def _offer_upload(self) -> DirectUpload | None:
        """POST /assets/uploads; None (and not asked again) where the storage is local."""
        try:
            # An offer creates nothing until completed: asking twice is harmless.
            answer = await self._call("POST", "/assets/uploads", dict, idempotent=True)
        except ApiError as error:
            if (error.status, error.code) != (409, "direct_upload_unavailable"):
                raise
            self._direct = False
            return None
        return parse(DirectUploadEnvelope, answer).upload

    async def _upload_direct(self, offer: DirectUpload, name: str, data: bytes) -> Asset:
        """The photo POSTed to the store's presigned form (without the API key), then checked by the API."""
        store = self.url.join(URL(offer.url))
        # The same key overwritten, and a repeated completion answers the same asset: both may be retried.
        body = functools.partial(_store_form, offer, name, data)
        await self._call(offer.method, store, body, idempotent=True, authorized=False)
        answer = await self._call("POST", offer.complete_url, dict, idempotent=True)
        return parse(AssetEnvelope, answer).asset

    async def list_assets(self, *, limit: int = 25, cursor: str | None = None) -> AssetPage:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        return parse(AssetPage, await self._call("GET", "/assets", lambda: {"params": query}))

    async def submit(
        self,
        asset_id: Any = None,
        *,
        photo: Photo | None = None,
        filename: str | None = None,
        prompt: str | None = None,
        tier: str = "free",
        style: str | None = None,
        idempotency_key: str | None = None,
        wait: int | None = None,
        webhook_url: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> Job:
        """POST /jobs for an uploaded asset, or with the photo itself; the same key and body give the same job.

        With `webhook_url`, the job's changes (`webhook_events`; default: how it ended) are POSTed there, signed
        with the key's secret (`webhook_secret()`).
        """
        fields = {"tier": tier} | ({"prompt": prompt} if prompt else {}) | ({"style": style} if style else {})
        fields |= {"webhook_url": webhook_url} if webhook_url else {}
        events = {"webhook_events": ",".join(webhook_events)} if webhook_events else {}  # a form's way
        headers = prefer(wait) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
        if photo is not None:
            name, data = await asyncio.to_thread(read_photo, photo, filename)
            body: Body = functools.partial(multipart, fields | events, name, data, headers)
        else:
            json_events = {"webhook_events": list(webhook_events)} if webhook_events else {}
            body = functools.partial(dict, json=fields | json_events | {"asset_id": str(asset_id)}, headers=headers)
        answer = await self._call("POST", "/jobs", body, idempotent=idempotency_key is not None, wait=wait)
        return parse(JobEnvelope, answer).job

    async def webhook_secret(self) -> str:
        """The secret your key's webhooks are signed with: verify them with any Standard Webhooks library."""
        answer = await self._call("GET", "/webhooks/secret", dict, idempotent=True)
        return parse(WebhookSecretEnvelope, answer).webhook_secret.secret

    async def get_job(self, job_id: Any, *, wait: int | None = None) -> Job:
        """GET /jobs/{id}; with `wait`, once the job has finished or after that many seconds (at most 60)."""
        answer = await self._call("GET", f"/jobs/{job_id}", lambda: {"headers": prefer(wait)}, wait=wait)
        return parse(JobEnvelope, answer).job

    async def wait(self, job_id: Any, *, within: float = 600.0) -> Job:
        """The job once it has finished, long-polling the API; TimeoutError after `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        job = await self.get_job(job_id)
        while not job.finished:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"job {job_id} is still {job.status} after {within:g} s")
            job = await self.get_job(job_id, wait=max(1, min(MAX_WAIT_S, int(left))))
        return job

    async def list_jobs(self, *, limit: int = 20, cursor: str | None = None, status: str | None = None) -> JobPage:
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {}) | ({"status": status} if status else {})
        return parse(JobPage, await self._call("GET", "/jobs", lambda: {"params": query}))

    async def output(self, job_id: Any) -> Output:
        """GET /jobs/{id}/output: the enhanced image, from the object store when the API redirects there."""
        answer = await self._call("GET", f"/jobs/{job_id}/output", lambda: {"allow_redirects": False})
        if answer.status in REDIRECTS:
            # A presigned link carries its own authority: the API key is not the store's business.
            location = self.url.join(URL(answer.headers["Location"]))
            answer = await self._call("GET", location, lambda: {}, authorized=False)
        return Output(answer.headers.get("Content-Type", "application/octet-stream").split(";")[0], answer.body)

    async def download(self, job_id: Any, dest: str | os.PathLike[str]) -> Path:
        """Write the job's output to `dest` (written whole or not at all); returns the path written."""
        found = await self.output(job_id)
        path = Path(dest)
        await asyncio.to_thread(write_whole, path, found.data)
        return path

    async def create_batch(
        self,
        jobs: Sequence[BatchJob],
        *,
        tier: str | None = None,
        style: str | None = None,
        prompt: str | None = None,
        idempotency_key: str | None = None,
        webhook_url: str | None = None,
        webhook_events: Sequence[str] | None = None,
    ) -> Batch:
        """POST /batches: one job per uploaded asset, all or none; the same key and body give the same batch.

        `tier`, `style` and `prompt` are the batch's defaults: a job's own value wins.
        """
        defaults = {"tier": tier, "style": style, "prompt": prompt, "webhook_url": webhook_url}
        fields: dict[str, Any] = {name: value for name, value in defaults.items() if value}
        fields |= {"webhook_events": list(webhook_events)} if webhook_events else {}
        payload = fields | {"jobs": [_batch_job(job) for job in jobs]}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body: Body = functools.partial(dict, json=payload, headers=headers)
        answer = await self._call("POST", "/batches", body, idempotent=idempotency_key is not None)
        return parse(BatchEnvelope, answer).batch

    async def get_batch(self, batch_id: Any) -> Batch:
        return parse(BatchEnvelope, await self._call("GET", f"/batches/{batch_id}", dict)).batch

    async def list_batches(self, *, limit: int = 25, cursor: str | None = None) -> BatchPage:
        """GET /batches: newest first, counted but without their jobs."""
        query = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        return parse(BatchPage, await self._call("GET", "/batches", lambda: {"params": query}))

    async def cancel_batch(self, batch_id: Any) -> Batch:
        """Cancel every job of the batch still queued; those already processing run on."""
        answer = await self._call("POST", f"/batches/{batch_id}/cancel", dict, idempotent=True)
        return parse(BatchEnvelope, answer).batch

    async def download_batch_zip(self, batch_id: Any, dest: str | os.PathLike[str]) -> Path:
        """Stream every succeeded output of the batch, zipped, to `dest` (whole or not at all); the path."""
        path = Path(dest)
        partial = partial_path(path)
        try:
            await self._call("GET", f"/batches/{batch_id}/outputs.zip", dict, sink=streamed_to(partial))
        except BaseException:
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise
        await asyncio.to_thread(partial.replace, path)
        return path

    async def _call(
        self,
        method: str,
        target: str | URL,
        body: Body,
        *,
        idempotent: bool | None = None,
        wait: int | None = None,
        authorized: bool = True,
        sink: Sink | None = None,
    ) -> Answer:
        """One call, retried as `RetryPolicy` allows; an error answer raises ApiError."""
        url = target if isinstance(target, URL) else self.url.with_path(self.url.path.rstrip("/") + target)
        safe = method == "GET" if idempotent is None else idempotent
        # A streamed body may take as long as it takes, as long as it keeps coming.
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S + (wait or 0)) if sink is None else STREAM_TIMEOUT
        attempt = 0
        while True:
            attempt += 1
            kwargs = body()
            headers = (self._auth if authorized else {}) | kwargs.pop("headers", {})
            try:
                answer = await self._send(method, url, sink, headers=headers, timeout=timeout, **kwargs)
            except (aiohttp.ClientConnectionError, TimeoutError) as error:
                if not safe or attempt >= self._retry.attempts:
                    raise TransportError(f"{method} {url}: {str(error) or type(error).__name__}") from error
                await asyncio.sleep(self._retry.backoff(attempt))
                continue
            if answer.status < 400:
                return answer
            delay = self._retry.delay_for(answer.status, answer.headers.get("Retry-After"), attempt, idempotent=safe)
            if delay is None:
                raise api_error(answer)
            await asyncio.sleep(delay)

    async def _send(self, method: str, url: URL, sink: Sink | None, **kwargs: Any) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, url, **kwargs) as response:
            if sink is not None and response.status < 300:
                await sink(response)
                return Answer(response.status, response.headers, b"")
            return Answer(response.status, response.headers, await response.read())


def _store_form(offer: DirectUpload, name: str, data: bytes) -> dict[str, Any]:
    return {"data": form(offer.fields, name, data, file_field=offer.file_field)}


def _batch_job(job: BatchJob) -> dict[str, Any]:
    if isinstance(job, Mapping):
        return {name: str(value) if name == "asset_id" else value for name, value in job.items()}
    return {"asset_id": str(job)}
