"""What crashes leave in storage, and its removal (on either backend).

- A write cut short (a worker killed while writing an output, an API killed while storing an upload)
  leaves its temporary file, or on S3 an unfinished multipart upload; the redo writes another.
- An API killed between storing an upload and recording its asset leaves a file that no asset names;
  its client never received an id for it; so does a direct upload never completed. A recorded upload
  gets its row milliseconds after its file, so one an hour old without a row never will.

Finding the second kind lists every upload, so that scan runs once an hour, not on every sweep.
"""

from __future__ import annotations

import asyncpg
import structlog

from shared import assets
from shared.storage import Store

log = structlog.get_logger()

UPLOAD_GRACE_S = 3600.0
UPLOAD_SCAN_EVERY_S = 3600.0
BATCH = 1000  # keys per query


async def clear_outputs(outputs: Store, *, older_than_s: float) -> None:
    removed = await outputs.remove_abandoned(older_than_s=older_than_s)
    if removed:
        log.warning("outputs.abandoned_removed", files=removed)


async def remove_unrecorded_uploads(pool: asyncpg.Pool, uploads: Store, *, older_than_s: float) -> list[str]:
    """Remove the uploads older than `older_than_s` that no asset names; returns their keys."""
    stale = await uploads.keys_older_than(older_than_s)
    removed: list[str] = []
    for start in range(0, len(stale), BATCH):
        batch = stale[start : start + BATCH]
        recorded = await assets.recorded_keys(pool, batch)
        orphans = [key for key in batch if key not in recorded]
        await uploads.remove(orphans)
        removed += orphans
    return removed


async def clear_uploads(pool: asyncpg.Pool, uploads: Store, *, older_than_s: float = UPLOAD_GRACE_S) -> None:
    abandoned = await uploads.remove_abandoned(older_than_s=older_than_s)
    unrecorded = await remove_unrecorded_uploads(pool, uploads, older_than_s=older_than_s)
    if abandoned or unrecorded:
        log.warning("uploads.leftovers_removed", abandoned=abandoned, unrecorded=unrecorded)
