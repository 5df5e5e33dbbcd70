"""The per-key signing secret a receiver verifies webhooks with (Standard Webhooks `whsec_…`)."""

from __future__ import annotations

import uuid

from shared.apikeys import new_webhook_secret
from shared.db import Queryable


async def signing_secret(connection: Queryable, key_id: uuid.UUID) -> str | None:
    """The key's secret; None when the key no longer exists."""
    secret = await connection.fetchval("SELECT webhook_secret FROM api_keys WHERE id = $1", key_id)
    return str(secret) if secret is not None else None


async def rotate(connection: Queryable, key_id: uuid.UUID) -> str:
    """A new secret for the key: deliveries signed from now on verify with it, and only with it."""
    secret = new_webhook_secret()
    await connection.execute("UPDATE api_keys SET webhook_secret = $2 WHERE id = $1", key_id, secret)
    return secret
