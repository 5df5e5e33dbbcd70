"""The workers repository: each worker's own record of being alive, for the stuck-job sweeper."""

from __future__ import annotations

from shared.db import Queryable


async def beat(connection: Queryable, *, worker_id: str, host: str) -> None:
    await connection.execute(
        """
        INSERT INTO workers (id, host) VALUES ($1, $2)
        ON CONFLICT (id) DO UPDATE SET last_seen = now(), stopped_at = NULL
        """,
        worker_id,
        host,
    )


async def stopped(connection: Queryable, *, worker_id: str) -> None:
    await connection.execute("UPDATE workers SET stopped_at = now(), last_seen = now() WHERE id = $1", worker_id)
