"""`luster submit`: one job per photo, submitted once however often the run is repeated, then waited on.

A photo's idempotency key is the hex sha256 of its bytes, a NUL, the tier, a NUL, the style, a NUL and
the prompt: the same photo sent the same way names the same job, so a rerun after an interruption gets
the jobs it already created back from the API instead of new ones. The state file saves a rerun from
sending those photos again at all.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from luster_client.client import AsyncLuster, write_whole
from luster_client.errors import ApiError, LusterClientError, TransportError
from luster_client.models import Job
from luster_client.progress import Progress, count
from luster_client.state import STATE_FILE, State

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
WAIT_S = 30  # one long poll; the API answers sooner when the job finishes
PARALLEL_WAITS = 8


@dataclass(frozen=True)
class Options:
    tier: str
    style: str
    prompt: str | None
    out: Path | None
    wait: bool
    timeout_s: float = 3600.0


@dataclass
class Item:
    path: Path
    key: str
    name: str  # the output's file name without its extension
    job: Job | None = None
    download_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.job is not None and self.job.status not in ("failed", "canceled") and not self.download_error


def idempotency_key(content: bytes, options: Options) -> str:
    digest = hashlib.sha256(content)
    for part in (options.tier, options.style, options.prompt or ""):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def plan(paths: list[Path], options: Options) -> list[Item]:
    """One item per distinct photo and options; outputs named after the photo, made unique if two share a stem."""
    items: dict[str, Item] = {}
    stems = [path.stem for path in paths]
    for path in paths:
        key = idempotency_key(path.read_bytes(), options)
        name = path.stem if stems.count(path.stem) == 1 else f"{path.stem}-{key[:8]}"
        items.setdefault(key, Item(path, key, name))
    return list(items.values())


class Batch:
    def __init__(self, client: AsyncLuster, options: Options, progress: Progress) -> None:
        self.client = client
        self.options = options
        self.progress = progress
        directory = options.out or Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        self.state = State(directory / STATE_FILE)

    async def run(self, items: list[Item]) -> bool:
        """Submit every item (and with `wait`, wait and download); True when none failed."""
        for number, item in enumerate(items, 1):
            await self._submit(item)
            self.progress.show(f"submitted {number}/{len(items)}")
        if self.options.wait:
            async with asyncio.timeout(self.options.timeout_s):
                await self._wait_all(items)
        self.progress.end()
        return all(item.ok for item in items)

    async def _submit(self, item: Item) -> None:
        known = self.state.jobs.get(item.key)
        if known is not None:
            try:
                item.job = await self.client.get_job(known)
                return
            except ApiError as error:
                if error.status != 404:  # a 404: deleted since (retention), so it is sent again below
                    raise
        options = self.options
        item.job = await self.client.submit(
            photo=item.path, prompt=options.prompt, tier=options.tier, style=options.style, idempotency_key=item.key
        )
        await asyncio.to_thread(self.state.record, item.key, str(item.job.id))

    async def _wait_all(self, items: list[Item]) -> None:
        gate = asyncio.Semaphore(PARALLEL_WAITS)
        self._redraw(items)
        try:
            async with asyncio.TaskGroup() as group:
                for item in items:
                    group.create_task(self._finish(item, items, gate))
        except* LusterClientError as failed:  # the first, as the caller would have had it without the group
            raise failed.exceptions[0] from None

    async def _finish(self, item: Item, items: list[Item], gate: asyncio.Semaphore) -> None:
        assert item.job is not None  # submitted by run()
        while not item.job.finished:
            async with gate:
                item.job = await self.client.get_job(item.job.id, wait=WAIT_S)
            self._redraw(items)
        if item.job.status == "succeeded" and self.options.out is not None:
            await self._download(item)
        elif item.job.status != "succeeded":
            reason = f"{item.job.error.code}: {item.job.error.message}" if item.job.error else item.job.status
            self.progress.say(f"{item.path}: job {item.job.id} {item.job.status} ({reason})")

    async def _download(self, item: Item) -> None:
        assert item.job is not None
        assert self.options.out is not None
        existing = [self.options.out / f"{item.name}{ext}" for ext in EXTENSIONS.values()]
        if any(path.exists() for path in existing):  # a download is renamed into place whole: this one finished
            return
        try:
            found = await self.client.output(item.job.id)
        except (ApiError, TransportError) as error:  # the others go on; a rerun tries this one again
            item.download_error = str(error)
            self.progress.say(f"{item.path}: job {item.job.id} succeeded but its output did not download: {error}")
            return
        dest = self.options.out / f"{item.name}{EXTENSIONS.get(found.content_type, '.bin')}"
        await asyncio.to_thread(write_whole, dest, found.data)
        self.progress.say(f"{item.path} -> {dest}")

    def _redraw(self, items: list[Item]) -> None:
        self.progress.show(count(item.job for item in items if item.job is not None).line())
