"""The API keys repository: who is calling, on which plan, with which limits.

A token is `lus_` and 43 URL-safe characters (256 random bits). It is shown once, when created;
only its SHA-256 is stored, and its first characters, so a listing can say which key is which.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.db import RELAXED_COMMIT, Queryable
from shared.domain import Tier

TOKEN_PREFIX = "lus_"
WEBHOOK_SECRET_PREFIX = "whsec_"
SHOWN_CHARACTERS = 12  # of the token, in listings: "lus_" and eight of the random part
PLANS: dict[str, frozenset[Tier]] = {
    "free": frozenset({Tier.FREE}),
    "premium": frozenset({Tier.FREE, Tier.PREMIUM}),
}


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    prefix: str
    name: str
    owner: str
    plan: str
    requests_per_minute: int | None  # None: the plan's default from the api's settings
    jobs_in_flight: int | None
    bytes_per_day: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def tiers(self) -> frozenset[Tier]:
        return PLANS.get(self.plan, frozenset())

    @classmethod
    def from_record(cls, record: asyncpg.Record) -> ApiKey:
        """The key's own columns of `record`; never its token's digest or its webhook secret, which is read
        only where a delivery is signed (shared/webhooks/secrets.py)."""
        return cls(**{name: record[name] for name in _KEY_COLUMNS})


# Read on every authenticated request: named once, not looked up through dataclasses.fields each time.
_KEY_COLUMNS = tuple(field.name for field in dataclasses.fields(ApiKey))


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and the base64 of 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_key(
    connection: Queryable,
    *,
    owner: str,
    name: str,
    plan: str,
    requests_per_minute: int | None = None,
    jobs_in_flight: int | None = None,
    bytes_per_day: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its token; the token is never stored, so this is the only time it exists."""
    if plan not in PLANS:
        raise ValueError(f"unknown plan {plan!r}; plans: {', '.join(PLANS)}")
    token = new_token()
    record = await connection.fetchrow(
        """
        INSERT INTO api_keys (id, prefix, token_sha256, name, owner, plan,
                              requests_per_minute, jobs_in_flight, bytes_per_day, webhook_secret)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING *
        """,
        uuid.uuid4(),
        token[:SHOWN_CHARACTERS],
        digest(token),
        name,
        owner,
        plan,
        requests_per_minute,
        jobs_in_flight,
        bytes_per_day,
        new_webhook_secret(),
    )
    assert record is not None  # INSERT ... RETURNING always returns the row
    return ApiKey.from_record(record), token


async def find_active(connection: Queryable, token: str) -> ApiKey | None:
    """The unrevoked key this token belongs to, or None."""
    record = await connection.fetchrow(
        "SELECT * FROM api_keys WHERE token_sha256 = $1 AND revoked_at IS NULL", digest(token)
    )
    return ApiKey.from_record(record) if record else None


async def mark_used(connection: Queryable, key_id: uuid.UUID) -> None:
    # Every request of a busy key finds the mark a minute old at once: none of them waits on an fsync.
    await connection.execute(
        f"WITH {RELAXED_COMMIT} UPDATE api_keys SET last_used_at = now() FROM relaxed_commit WHERE id = $1", key_id
    )


async def list_keys(connection: Queryable, *, owner: str | None = None) -> list[ApiKey]:
    records = await connection.fetch(
        "SELECT * FROM api_keys WHERE ($1::text IS NULL OR owner = $1) ORDER BY created_at DESC", owner
    )
    return [ApiKey.from_record(record) for record in records]


async def revoke(connection: Queryable, key_id: uuid.UUID) -> ApiKey | None:
    """Revoke a key (at once, for every api instance); None when there is no such key."""
    record = await connection.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *", key_id
    )
    return ApiKey.from_record(record) if record else None
