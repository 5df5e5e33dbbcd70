"""The assets repository: uploaded originals and where their bytes live."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db import Queryable


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
) -> Asset:
    record = await connection.fetchrow(
        """
        INSERT INTO assets (id, filename, content_type, size_bytes, width, height, sha256, storage_key, owner)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING *
        """,
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


async def recorded_keys(connection: Queryable, keys: Sequence[str]) -> set[str]:
    """Those of `keys` that an asset row names."""
    records = await connection.fetch("SELECT storage_key FROM assets WHERE storage_key = ANY($1::text[])", list(keys))
    return {record["storage_key"] for record in records}
