"""The message ready to publish, apart from the broker: repositories staging one need no connection code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to publish; what the outbox stores and the relay replays."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, Any]
    expiration_ms: int | None = None
