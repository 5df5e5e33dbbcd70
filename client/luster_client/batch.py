"""`luster submit`: the photos uploaded once, then submitted as one batch (a hundred photos a batch), once
however often the run is repeated.

A photo's key is the hex sha256 of its bytes, a NUL, the tier, a NUL, the style, a NUL and the prompt; a
batch's Idempotency-Key is the sha256 of its photos' keys (in key order, NUL-separated). The same photos sent
the same way, with the same assets (see uploads.py), are the same request, so a rerun after an interruption
gets the batch it already created back from the API instead of a second one. The state file saves a rerun
from uploading those photos, or asking for that batch, again at all.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from luster_client.client import AsyncLuster
from luster_client.errors import ApiError
from luster_client.follow import Follower
from luster_client.models import Batch, Job
from luster_client.progress import Progress
from luster_client.state import STATE_FILE, State
from luster_client.uploads import Uploads

MAX_BATCH_JOBS = 100  # the most POST /batches takes


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
    key: str  # the photo and the options
    sha256: str  # the photo alone: its asset
    name: str  # the output's file name without its extension
    job: Job | None = None
    download_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.job is not None and self.job.status not in ("failed", "canceled") and not self.download_error


@dataclass
class Group:
    """The items of one batch, in the order the batch lists its jobs."""

    items: list[Item]
    key: str = field(init=False)
    batch: Batch | None = None

    def __post_init__(self) -> None:
        self.key = batch_key(self.items)

    def take(self, batch: Batch) -> None:
        self.batch = batch
        for item, job in zip(self.items, batch.jobs, strict=True):
            item.job = job


def idempotency_key(content: bytes, options: Options) -> str:
    digest = hashlib.sha256(content)
    for part in (options.tier, options.style, options.prompt or ""):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def batch_key(items: list[Item]) -> str:
    return hashlib.sha256(b"\0".join(item.key.encode() for item in items)).hexdigest()


def plan(paths: list[Path], options: Options) -> list[Item]:
    """One item per distinct photo and options; outputs named after the photo, made unique if two share a stem."""
    items: dict[str, Item] = {}
    stems = [path.stem for path in paths]
    for path in paths:
        content = path.read_bytes()
        key = idempotency_key(content, options)
        name = path.stem if stems.count(path.stem) == 1 else f"{path.stem}-{key[:8]}"
        items.setdefault(key, Item(path, key, hashlib.sha256(content).hexdigest(), name))
    return list(items.values())


def groups(items: list[Item]) -> list[Group]:
    """Batches of at most MAX_BATCH_JOBS, in key order: the same photos make the same batches in any order."""
    ordered = sorted(items, key=lambda item: item.key)
    return [Group(ordered[start : start + MAX_BATCH_JOBS]) for start in range(0, len(ordered), MAX_BATCH_JOBS)]


class Submission:
    def __init__(self, client: AsyncLuster, options: Options, progress: Progress) -> None:
        self.client = client
        self.options = options
        self.progress = progress
        directory = options.out or Path.cwd()
        directory.mkdir(parents=True, exist_ok=True)
        self.state = State(directory / STATE_FILE)

    async def run(self, items: list[Item]) -> bool:
        """Upload and submit every item (and with `wait`, wait and download); True when none failed."""
        uploads = Uploads(self.client, self.state)
        await uploads.assets(_photos(items))
        self.progress.show(f"uploaded {len(items)}/{len(items)}")
        batches = groups(items)
        for group in batches:
            await self._submit(group, uploads)
        if self.options.wait:
            async with asyncio.timeout(self.options.timeout_s):
                await Follower(self.client, self.progress, self.options.out).run(batches)
        self.progress.end()
        return all(item.ok for item in items)

    async def _submit(self, group: Group, uploads: Uploads) -> None:
        known = self.state.batches.get(group.key)
        if known is not None:
            try:
                group.take(await self.client.get_batch(known))
                return
            except ApiError as error:
                if error.status != 404:  # a 404: deleted since (retention), so it is sent again below
                    raise
        for _ in range(len(group.items)):
            try:
                batch = await self._create(group, await uploads.assets(_photos(group.items)))
                break
            except ApiError as error:
                gone = _gone(error, group)
                if gone is None:
                    raise
                await uploads.forget(gone.sha256)  # its asset was deleted since (retention): upload it again
        else:
            batch = await self._create(group, await uploads.assets(_photos(group.items)))
        await asyncio.to_thread(self.state.record_batch, group.key, str(batch.id))
        group.take(batch)
        self.progress.say(f"batch {batch.id}: {batch.total} photos")

    async def _create(self, group: Group, assets: dict[str, str]) -> Batch:
        options, asset_ids = self.options, [assets[item.sha256] for item in group.items]
        return await self.client.create_batch(
            asset_ids, tier=options.tier, style=options.style, prompt=options.prompt, idempotency_key=group.key
        )


def _photos(items: list[Item]) -> list[tuple[str, str]]:
    return [(item.sha256, str(item.path)) for item in items]


def _gone(error: ApiError, group: Group) -> Item | None:
    """The item whose asset a 404 from POST /batches names (`jobs.<index>.asset_id`), if it names one."""
    named = re.fullmatch(r"jobs\.(\d+)\.asset_id", error.field or "")
    if error.status != 404 or named is None or int(named.group(1)) >= len(group.items):
        return None
    return group.items[int(named.group(1))]
