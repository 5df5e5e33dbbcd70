"""The assets repository: uploaded originals and where their bytes live."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db import RELAXED_COMMIT, Queryable
from shared.pagination import decode_cursor, encode_cursor


@dataclass(frozen=True)
class Asset:
    id: uuid.UUID
    filename: str | None
    content_type: str
    size_bytes: int
    width: int
    height: int
    sha256: str
    storage_key: str
    created_at: datetime
    owner: str

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> Asset:
        return cls(**dict(record))


_COLUMNS = "id, filename, content_type, size_bytes, width, height, sha256, storage_key, owner"
_VALUES = "$1, $2, $3, $4, $5, $6, $7, $8, $9"
_INSERT = f"INSERT INTO assets ({_COLUMNS}) VALUES ({_VALUES}) RETURNING *"
# For a photo whose job's commit follows (insert_asset's `job_follows`).
_INSERT_RELAXED = (
    f"WITH {RELAXED_COMMIT} INSERT INTO assets ({_COLUMNS}) SELECT {_VALUES} FROM relaxed_commit RETURNING *"
)


async def insert_asset(
    connection: Queryable,
    *,
    asset_id: uuid.UUID,
    filename: str | None,
    content_type: str,
    size_bytes: int,
    width: int,
    height: int,
    sha256: str,
    storage_key: str,
    owner: str,
    job_follows: bool = False,
) -> Asset:
    """Record an asset; with `job_follows`, its commit does not wait for the WAL to reach disk.

    For a photo uploaded with its job: the job's commit, which the answer waits for, comes after this one in
    the WAL, and a flush reaches disk in WAL order, so the answer finds both durable or the client an error.
    One fsync wait a request fewer (the disk is busy with the photos' own) and the connection back sooner.
    """
    record = await connection.fetchrow(
        _INSERT_RELAXED if job_follows else _INSERT,
        asset_id,
        filename,
        content_type,
        size_bytes,
        width,
        height,
        sha256,
        storage_key,
        owner,
    )
    assert record is not None  # INSERT ... RETURNING always returns the row
    return Asset.from_record(record)


async def get_asset(connection: Queryable, asset_id: uuid.UUID, *, owner: str | None = None) -> Asset | None:
    """The asset; with `owner`, only if it is theirs (another owner's asset does not exist for them)."""
    record = await connection.fetchrow(
        "SELECT * FROM assets WHERE id = $1 AND ($2::text IS NULL OR owner = $2)", asset_id, owner
    )
    return Asset.from_record(record) if record else None


@dataclass(frozen=True)
class AssetPage:
    assets: list[Asset]
    next_cursor: str | None


async def list_assets(connection: Queryable, *, owner: str, cursor: str | None = None, limit: int = 25) -> AssetPage:
    """The owner's assets, newest first, keyset-paginated on (created_at, id) so pages stay stable under
    uploads; idx_assets_owner_created serves the owner and the order, id only breaks ties."""
    after = decode_cursor(cursor) if cursor else None
    records = await connection.fetch(
        """
        SELECT * FROM assets
        WHERE owner = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $4
        """,
        owner,
        after[0] if after else None,
        after[1] if after else None,
        limit + 1,
    )
    assets = [Asset.from_record(record) for record in records[:limit]]
    last = assets[-1] if len(records) > limit else None
    return AssetPage(assets, encode_cursor(last.created_at, last.id) if last else None)


async def recorded_keys(connection: Queryable, keys: Sequence[str]) -> set[str]:
    """Those of `keys` that an asset row names."""
    records = await connection.fetch("SELECT storage_key FROM assets WHERE storage_key = ANY($1::text[])", list(keys))
    return {record["storage_key"] for record in records}
