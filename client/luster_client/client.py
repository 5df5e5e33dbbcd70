"""`AsyncLuster`: every call the client makes to the API, over one aiohttp session."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import BaseModel, ValidationError
from yarl import URL

from luster_client.config import Config
from luster_client.errors import ApiError, TransportError
from luster_client.models import Asset, AssetEnvelope, ErrorBody, Job, JobEnvelope, JobPage
from luster_client.retry import RetryPolicy

MAX_WAIT_S = 60  # the most `Prefer: wait=N` the API accepts
TIMEOUT_S = 60.0  # beyond any wait asked for: a long poll must not time out on its own
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
Photo = str | os.PathLike[str] | bytes
ModelT = TypeVar("ModelT", bound=BaseModel)
Body = Callable[[], dict[str, Any]]  # the request's keyword arguments, built afresh for each attempt


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(frozen=True)
class Output:
    """An enhanced image as downloaded."""

    content_type: str
    data: bytes


class AsyncLuster:
    """The API as typed async calls; use it as an async context manager (it owns an aiohttp session)."""

    def __init__(self, url: str, key: str, *, retry: RetryPolicy | None = None) -> None:
        self.url = URL(url.rstrip("/"))
        self._auth = {"Authorization": f"Bearer {key}"}
        self._retry = retry or RetryPolicy()
        self._session: aiohttp.ClientSession | None = None

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
        """POST /assets: store a photo, for jobs to name by its id."""
        name, data = await asyncio.to_thread(_read, photo, filename)
        answer = await self._call("POST", "/assets", lambda: {"data": _form({}, name, data)}, idempotent=False)
        return _parse(AssetEnvelope, answer).asset

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
    ) -> Job:
        """POST /jobs for an uploaded asset, or with the photo itself; the same key and body give the same job."""
        fields = {"tier": tier} | ({"prompt": prompt} if prompt else {}) | ({"style": style} if style else {})
        headers = _prefer(wait) | ({"Idempotency-Key": idempotency_key} if idempotency_key else {})
        if photo is not None:
            name, data = await asyncio.to_thread(_read, photo, filename)
            body: Body = functools.partial(_multipart, fields, name, data, headers)
        else:
            body = functools.partial(dict, json=fields | {"asset_id": str(asset_id)}, headers=headers)
        answer = await self._call("POST", "/jobs", body, idempotent=idempotency_key is not None, wait=wait)
        return _parse(JobEnvelope, answer).job

    async def get_job(self, job_id: Any, *, wait: int | None = None) -> Job:
        """GET /jobs/{id}; with `wait`, once the job has finished or after that many seconds (at most 60)."""
        answer = await self._call("GET", f"/jobs/{job_id}", lambda: {"headers": _prefer(wait)}, wait=wait)
        return _parse(JobEnvelope, answer).job

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
        return _parse(JobPage, await self._call("GET", "/jobs", lambda: {"params": query}))

    async def output(self, job_id: Any) -> Output:
        """GET /jobs/{id}/output: the enhanced image, from the object store when the API redirects there."""
        answer = await self._call("GET", f"/jobs/{job_id}/output", lambda: {"allow_redirects": False})
        if answer.status in (301, 302, 303, 307, 308):
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

    async def _call(
        self,
        method: str,
        target: str | URL,
        body: Body,
        *,
        idempotent: bool | None = None,
        wait: int | None = None,
        authorized: bool = True,
    ) -> Answer:
        """One call, retried as `RetryPolicy` allows; an error answer raises ApiError."""
        url = target if isinstance(target, URL) else self.url.with_path(self.url.path.rstrip("/") + target)
        safe = method == "GET" if idempotent is None else idempotent
        timeout = aiohttp.ClientTimeout(total=TIMEOUT_S + (wait or 0))
        attempt = 0
        while True:
            attempt += 1
            kwargs = body()
            headers = (self._auth if authorized else {}) | kwargs.pop("headers", {})
            try:
                answer = await self._send(method, url, headers=headers, timeout=timeout, **kwargs)
            except (aiohttp.ClientConnectionError, TimeoutError) as error:
                if not safe or attempt >= self._retry.attempts:
                    raise TransportError(f"{method} {url}: {str(error) or type(error).__name__}") from error
                await asyncio.sleep(self._retry.backoff(attempt))
                continue
            if answer.status < 400:
                return answer
            delay = self._retry.delay_for(answer.status, answer.headers.get("Retry-After"), attempt, idempotent=safe)
            if delay is None:
                raise _api_error(answer)
            await asyncio.sleep(delay)

    async def _send(self, method: str, url: URL, **kwargs: Any) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, url, **kwargs) as response:
            return Answer(response.status, response.headers, await response.read())


def write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file: a reader (or a rerun) never sees half an image."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def _prefer(wait: int | None) -> dict[str, str]:
    if wait is None:
        return {}
    if not 0 <= wait <= MAX_WAIT_S:
        raise ValueError(f"wait takes 0 to {MAX_WAIT_S} seconds, not {wait}")
    return {"Prefer": f"wait={wait}"}


def _read(photo: Photo, filename: str | None) -> tuple[str, bytes]:
    if isinstance(photo, bytes):
        return filename or "photo.jpg", photo
    path = Path(photo)
    return filename or path.name, path.read_bytes()


def _multipart(fields: dict[str, str], filename: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
    return {"data": _form(fields, filename, data), "headers": headers}


def _form(fields: dict[str, str], filename: str, data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    content_type = CONTENT_TYPES.get(Path(filename).suffix.lower(), "application/octet-stream")
    form.add_field("file", data, filename=filename, content_type=content_type)
    return form


def _parse(model: type[ModelT], answer: Answer) -> ModelT:
    return model.model_validate_json(answer.body)


def _api_error(answer: Answer) -> ApiError:
    try:
        detail = ErrorBody.model_validate_json(answer.body).error
    except ValidationError:  # not the API's own shape: a proxy's page, say
        text = answer.body[:200].decode(errors="replace").strip()
        return ApiError(answer.status, "http_error", text or f"HTTP {answer.status}")
    return ApiError(answer.status, detail.code, detail.message, detail.field)
