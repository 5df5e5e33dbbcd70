"""Staging: messages written into the outbox table in the transaction of the state change they announce."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.db import Connection
from shared.messages import OutgoingMessage


@dataclass(frozen=True)
class Staged:
    """A message written in a transaction, to publish once that transaction has committed."""

    outbox_id: int
    message: OutgoingMessage


OUTBOX_COLUMNS = ("message_id", "exchange", "routing_key", "body", "headers", "expiration_ms")


def outbox_arguments(message: OutgoingMessage) -> tuple[Any, ...]:
    """The values of a message for OUTBOX_COLUMNS, in their order."""
    return (
        message.message_id,
        message.exchange,
        message.routing_key,
        message.body,
        dict(message.headers),
        message.expiration_ms,
    )


class Outbox:
    """A transaction's connection, and the messages staged in it to publish once it has committed."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.staged: list[Staged] = []

    async def stage(self, message: OutgoingMessage) -> None:
        self.staged.append(await stage(self.connection, message))

    def publish_after_commit(self, staged: Sequence[Staged]) -> None:
        """Messages already in the outbox (say, released from holding) to publish with this transaction's."""
        self.staged.extend(staged)


async def stage(connection: Connection, message: OutgoingMessage) -> Staged:
    outbox_id = await connection.fetchval(
        """
        INSERT INTO outbox (message_id, exchange, routing_key, body, headers, expiration_ms)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
        """,
        *outbox_arguments(message),
    )
    return Staged(int(outbox_id), message)


# Insertion follows the messages' order, and the identity column numbers rows as they are inserted, so the
# ids in ascending order are the messages' in theirs.
_STAGE_MANY = f"""
INSERT INTO outbox ({", ".join(OUTBOX_COLUMNS)})
SELECT {", ".join(OUTBOX_COLUMNS)}
FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::jsonb[], $6::int[])
    WITH ORDINALITY AS staged({", ".join(OUTBOX_COLUMNS)}, place)
ORDER BY place
RETURNING id
"""


async def stage_many(connection: Connection, messages: Sequence[OutgoingMessage]) -> list[Staged]:
    """`stage` for several messages in one statement."""
    columns = zip(*(outbox_arguments(message) for message in messages), strict=True)
    records = await connection.fetch(_STAGE_MANY, *(list(column) for column in columns))
    ids = sorted(int(record["id"]) for record in records)
    return [Staged(outbox_id, message) for outbox_id, message in zip(ids, messages, strict=True)]


def message_of(record: asyncpg.Record) -> OutgoingMessage:
    return OutgoingMessage(
        exchange=record["exchange"],
        routing_key=record["routing_key"],
        body=bytes(record["body"]),
        message_id=record["message_id"],
        headers=record["headers"],
        expiration_ms=record["expiration_ms"],
    )
