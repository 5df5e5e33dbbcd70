"""Each photo of a `luster submit` run as an asset: the one the state file names, one uploaded lately, or a new one.

A photo is known by the sha256 of its bytes, which the API keeps on every asset. Finding the assets a run
uploaded before (its state file lost, or killed between an upload and recording it) gives every photo the
same asset again, so that the batch request is the same request and its key replays the same batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from luster_client.client import AsyncLuster
from luster_client.errors import LusterClientError
from luster_client.state import State

# The API replays an Idempotency-Key for a day (by default): an older upload cannot bring a batch back.
LOOKBACK = timedelta(days=1)
PAGE = 100  # the most GET /assets lists at once
PARALLEL_UPLOADS = 4


async def find_uploaded(client: AsyncLuster, wanted: set[str], *, now: datetime | None = None) -> dict[str, str]:
    """sha256 → asset id for the photos of `wanted` uploaded within LOOKBACK, newest asset first.

    Costs one GET /assets per hundred assets uploaded in that time, and stops once every photo is found.
    """
    since = (now or datetime.now(UTC)) - LOOKBACK
    found: dict[str, str] = {}
    cursor: str | None = None
    while wanted - found.keys():
        page = await client.list_assets(limit=PAGE, cursor=cursor)
        for asset in page.assets:
            if asset.sha256 in wanted:
                found.setdefault(asset.sha256, str(asset.id))
        if page.next_cursor is None or not page.assets or page.assets[-1].created_at < since:
            break
        cursor = page.next_cursor
    return found


class Uploads:
    """The asset of each photo, uploading only those neither the state file nor the API already has."""

    def __init__(self, client: AsyncLuster, state: State) -> None:
        self.client = client
        self.state = state
        self._saving = asyncio.Lock()  # one writer of the state file at a time

    async def assets(self, photos: Iterable[tuple[str, str]]) -> dict[str, str]:
        """sha256 → asset id for each (sha256, path) of `photos`."""
        paths = dict(photos)
        missing = set(paths) - self.state.assets.keys()
        if missing:
            for sha256, asset_id in (await find_uploaded(self.client, missing)).items():
                await self._record(sha256, asset_id)
        gate = asyncio.Semaphore(PARALLEL_UPLOADS)
        try:
            async with asyncio.TaskGroup() as group:
                for sha256 in [sha256 for sha256 in paths if sha256 not in self.state.assets]:
                    group.create_task(self._upload(sha256, paths[sha256], gate))
        except* LusterClientError as failed:  # the first, as the caller would have had it without the group
            raise failed.exceptions[0] from None
        return {sha256: self.state.assets[sha256] for sha256 in paths}

    async def _upload(self, sha256: str, path: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            asset = await self.client.upload(path)
        await self._record(sha256, str(asset.id))

    async def forget(self, sha256: str) -> None:
        """Drop a photo's asset (the API has lost it): the next `assets()` finds or uploads another."""
        async with self._saving:
            await asyncio.to_thread(self.state.forget_asset, sha256)

    async def _record(self, sha256: str, asset_id: str) -> None:
        async with self._saving:
            await asyncio.to_thread(self.state.record_asset, sha256, asset_id)
