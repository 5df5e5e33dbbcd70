"""The relay: publishes what staging committed and publishing did not send (broker down, process killed),
and keeps the table small."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from shared.broker import Broker
from shared.db import Connection
from shared.outbox.publishing import PUBLISH_TIMEOUT_S, log_failure
from shared.outbox.staging import message_of
from shared.telemetry.tracing import tracer, untraced

log = structlog.get_logger()


async def relay_once(pool: asyncpg.Pool, broker: Broker, *, min_age_s: float = 5.0, batch: int = 100) -> int:
    """Publish one batch of rows older than `min_age_s`; safe with several relays at once."""
    # Polling is untraced; what it publishes still joins each job's trace (see publish_span).
    with untraced():
        async with pool.acquire() as connection, connection.transaction():
            records = await connection.fetch(
                """
                SELECT * FROM outbox
                WHERE published_at IS NULL AND held_job IS NULL AND created_at < now() - make_interval(secs => $1)
                ORDER BY id LIMIT $2
                FOR UPDATE SKIP LOCKED
                """,
                min_age_s,
                batch,
            )
            if records:
                await _publish_batch(connection, broker, records)
    return len(records)


async def _publish_batch(connection: Connection, broker: Broker, records: list[asyncpg.Record]) -> None:
    with tracer.start_as_current_span("outbox relay", attributes={"luster.outbox.batch": len(records)}):
        for record in records:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await broker.publish_raw(message_of(record))
            await connection.execute("UPDATE outbox SET published_at = now() WHERE id = $1", record["id"])


async def prune(pool: asyncpg.Pool, *, keep_s: float = 86_400.0) -> None:
    await pool.execute("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)", keep_s)


async def relay(
    pool: asyncpg.Pool,
    broker: Broker,
    *,
    interval_s: float = 2.0,
    min_age_s: float = 5.0,
    release: Callable[[asyncpg.Pool], Awaitable[int]] | None = None,
) -> None:
    """Run until cancelled: publish leftovers, and keep the table small. `release`, before each pass,
    frees held messages for it to publish (shared/fairshare.py)."""
    rounds = 0
    while True:
        try:
            if release is not None:
                with untraced():
                    await release(pool)
            published = await relay_once(pool, broker, min_age_s=min_age_s)
            if published:
                log.info("outbox.relayed", count=published)
            rounds += 1
            if rounds % 500 == 0:
                with untraced():
                    await prune(pool)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log_failure("outbox.relay_failed", error)
        await asyncio.sleep(interval_s)
