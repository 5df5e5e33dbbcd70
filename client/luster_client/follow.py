"""Following a run's batches to the end: a progress line per batch, each output downloaded once its job succeeds.

GET /batches/{id} every POLL_S seconds: one small read per batch however many photos it has.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from luster_client.client import AsyncLuster, write_whole
from luster_client.errors import ApiError, LusterClientError, TransportError
from luster_client.progress import Progress, batch_line

if TYPE_CHECKING:  # batch.py imports this module
    from luster_client.batch import Group, Item

POLL_S = 2.0
PARALLEL_DOWNLOADS = 8
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class Follower:
    def __init__(self, client: AsyncLuster, progress: Progress, out: Path | None) -> None:
        self.client = client
        self.progress = progress
        self.out = out
        self._seen: set[str] = set()  # the items already downloaded or reported
        self._gate = asyncio.Semaphore(PARALLEL_DOWNLOADS)

    async def run(self, groups: list[Group]) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                for group in groups:
                    tasks.create_task(self._follow(group, groups, tasks))
        except* LusterClientError as failed:  # the first, as the caller would have had it without the group
            raise failed.exceptions[0] from None

    async def _follow(self, group: Group, groups: list[Group], tasks: asyncio.TaskGroup) -> None:
        assert group.batch is not None  # submitted before it is followed
        while True:
            self._redraw(groups)
            for item in group.items:
                self._settle(item, tasks)
            if group.batch.finished:
                return
            await asyncio.sleep(POLL_S)
            group.take(await self.client.get_batch(group.batch.id))

    def _settle(self, item: Item, tasks: asyncio.TaskGroup) -> None:
        """A finished job's output downloaded, or its failure said, once."""
        job = item.job
        if job is None or not job.finished or item.key in self._seen:
            return
        self._seen.add(item.key)
        if job.status == "succeeded":
            if self.out is not None:
                tasks.create_task(self._download(item, self.out))
            return
        reason = f"{job.error.code}: {job.error.message}" if job.error else job.status
        self.progress.say(f"{item.path}: job {job.id} {job.status} ({reason})")

    async def _download(self, item: Item, out: Path) -> None:
        assert item.job is not None
        existing = [out / f"{item.name}{ext}" for ext in EXTENSIONS.values()]
        if any(path.exists() for path in existing):  # a download is renamed into place whole: this one finished
            return
        try:
            async with self._gate:
                found = await self.client.output(item.job.id)
        except (ApiError, TransportError) as error:  # the others go on; a rerun tries this one again
            item.download_error = str(error)
            self.progress.say(f"{item.path}: job {item.job.id} succeeded but its output did not download: {error}")
            return
        dest = out / f"{item.name}{EXTENSIONS.get(found.content_type, '.bin')}"
        await asyncio.to_thread(write_whole, dest, found.data)
        self.progress.say(f"{item.path} -> {dest}")

    def _redraw(self, groups: list[Group]) -> None:
        self.progress.show("\n".join(batch_line(group.batch) for group in groups if group.batch is not None))
