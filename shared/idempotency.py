"""Idempotency keys, per owner, for whatever a request creates (a job, a batch): who holds a key, and
freeing one once it has expired so that a new request may use it."""

from __future__ import annotations

from typing import Literal

import asyncpg

from shared.db import Queryable
from shared.errors import Conflict

HEADER = "Idempotency-Key"

# Tables whose rows carry `owner`, `idempotency_key` (unique per owner) and `created_at`.
Table = Literal["jobs", "batches"]


async def find(
    connection: Queryable, table: Table, owner: str, key: str, *, ttl_s: float | None
) -> asyncpg.Record | None:
    """The row this owner created with `key` within the last `ttl_s` seconds (None: however long ago)."""
    return await connection.fetchrow(
        f"""
        SELECT * FROM {table} WHERE owner = $1 AND idempotency_key = $2
          AND ($3::float8 IS NULL OR created_at > now() - make_interval(secs => $3))
        """,
        owner,
        key,
        ttl_s,
    )


async def release_expired(connection: Queryable, table: Table, owner: str, key: str, *, ttl_s: float) -> None:
    """Free a key whose row is older than `ttl_s`, so a new request may use it."""
    await connection.execute(
        f"""
        UPDATE {table} SET idempotency_key = NULL
        WHERE owner = $1 AND idempotency_key = $2 AND created_at <= now() - make_interval(secs => $3)
        """,
        owner,
        key,
        ttl_s,
    )


def refuse_different(existing_fingerprint: str | None, fingerprint: str) -> None:
    """409 when the key already named a different request; a replay of the same one passes."""
    if existing_fingerprint != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request", field=HEADER)
