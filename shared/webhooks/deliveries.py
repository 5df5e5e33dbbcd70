"""The record of webhook attempts: what a job's (or batch's) receiver was sent, and how it answered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Queryable

SHOWN = 50  # the newest attempts a job shows; a receiver down for a day makes at most 7 per message


@dataclass(frozen=True)
class DeliveryAttempt:
    webhook_id: str
    event: str
    attempt: int
    outcome: str
    response_status: int | None
    duration_ms: float
    error: str | None
    created_at: datetime


async def recent(
    connection: Queryable, *, job_id: uuid.UUID | None = None, batch_id: uuid.UUID | None = None
) -> list[DeliveryAttempt]:
    """The newest attempts for the job or the batch, oldest first."""
    records = await connection.fetch(
        """
        SELECT * FROM (
            SELECT webhook_id, event, attempt, outcome, response_status, duration_ms, error, created_at, id
            FROM webhook_deliveries WHERE job_id = $1 OR batch_id = $2 ORDER BY id DESC LIMIT $3
        ) newest ORDER BY id
        """,
        job_id,
        batch_id,
        SHOWN,
    )
    return [DeliveryAttempt(**{k: v for k, v in record.items() if k != "id"}) for record in records]
