"""Jobs the structure guard flagged (their output changed the property's structure), newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Queryable

QUERY_TIMEOUT_S = 5.0
MAX_FLAGGED = 50


@dataclass(frozen=True)
class FlaggedJob:
    id: uuid.UUID
    status: str  # succeeded (delivered flagged) or failed
    structure_score: float | None
    engine: str | None
    tier: str
    updated_at: datetime


async def recent_flagged(connection: Queryable, *, limit: int = MAX_FLAGGED) -> list[FlaggedJob]:
    # Walks idx_jobs_flagged (updated_at DESC WHERE flagged): never touches the unflagged majority.
    rows = await connection.fetch(
        """
        SELECT id, status, structure_score, engine, tier, updated_at
        FROM jobs WHERE flagged ORDER BY updated_at DESC LIMIT $1
        """,
        limit,
        timeout=QUERY_TIMEOUT_S,
    )
    return [FlaggedJob(**dict(row)) for row in rows]


async def count_flagged(connection: Queryable) -> int:
    count: int = await connection.fetchval("SELECT count(*) FROM jobs WHERE flagged", timeout=QUERY_TIMEOUT_S)
    return count
