"""`Luster`: the async client's calls, blocking, on an event loop of its own.

One `asyncio.Runner` per client keeps one loop, so the aiohttp session lives across calls. It cannot be
used from inside a running event loop (asyncio forbids nesting): async code uses `AsyncLuster`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from luster_client.client import AsyncLuster, BatchJob, Output, Photo
from luster_client.config import Config
from luster_client.models import Asset, AssetPage, Batch, BatchPage, Job, JobPage
from luster_client.retry import RetryPolicy


class Luster:
    """The API as typed blocking calls; use it as a context manager, or call close()."""

    def __init__(self, url: str, key: str, *, retry: RetryPolicy | None = None) -> None:
        self._runner = asyncio.Runner()
        self._client = AsyncLuster(url, key, retry=retry)
        self._closed = False

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> Luster:
        return cls(config.url, config.key, **kwargs)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._runner.run(self._client.close())
        self._runner.close()

    def upload(self, photo: Photo, *, filename: str | None = None) -> Asset:
        """As AsyncLuster.upload: straight to the object store where the API offers it, else POST /assets."""
        return self._runner.run(self._client.upload(photo, filename=filename))

    def list_assets(self, *, limit: int = 25, cursor: str | None = None) -> AssetPage:
        return self._runner.run(self._client.list_assets(limit=limit, cursor=cursor))

    def submit(self, asset_id: Any = None, **options: Any) -> Job:
        """As AsyncLuster.submit: photo, filename, prompt, tier, style, idempotency_key, wait."""
        return self._runner.run(self._client.submit(asset_id, **options))

    def get_job(self, job_id: Any, *, wait: int | None = None) -> Job:
        return self._runner.run(self._client.get_job(job_id, wait=wait))

    def wait(self, job_id: Any, *, within: float = 600.0) -> Job:
        return self._runner.run(self._client.wait(job_id, within=within))

    def list_jobs(self, *, limit: int = 20, cursor: str | None = None, status: str | None = None) -> JobPage:
        return self._runner.run(self._client.list_jobs(limit=limit, cursor=cursor, status=status))

    def output(self, job_id: Any) -> Output:
        return self._runner.run(self._client.output(job_id))

    def download(self, job_id: Any, dest: str | os.PathLike[str]) -> Path:
        return self._runner.run(self._client.download(job_id, dest))

    def create_batch(self, jobs: Sequence[BatchJob], **options: Any) -> Batch:
        """As AsyncLuster.create_batch: tier, style, prompt, idempotency_key, webhook_url, webhook_events."""
        return self._runner.run(self._client.create_batch(jobs, **options))

    def get_batch(self, batch_id: Any) -> Batch:
        return self._runner.run(self._client.get_batch(batch_id))

    def list_batches(self, *, limit: int = 25, cursor: str | None = None) -> BatchPage:
        return self._runner.run(self._client.list_batches(limit=limit, cursor=cursor))

    def cancel_batch(self, batch_id: Any) -> Batch:
        return self._runner.run(self._client.cancel_batch(batch_id))

    def download_batch_zip(self, batch_id: Any, dest: str | os.PathLike[str]) -> Path:
        return self._runner.run(self._client.download_batch_zip(batch_id, dest))
