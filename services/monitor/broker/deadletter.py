"""One dead-lettered message: why it died, where it came from, how often it was tried, and the copy a re-queue sends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.broker import DEAD_AT_HEADER, QUEUE_HEADER, REASON_HEADER
from shared.events import EventType
from shared.topology import DELIVERY_LIMIT

PREVIEW_CHARS = 300
# Headers that describe a message's past death; a re-queued copy starts afresh without them.
DEATH_HEADERS = frozenset(
    {
        REASON_HEADER,
        QUEUE_HEADER,
        DEAD_AT_HEADER,
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)


@dataclass(frozen=True)
class DeadLetter:
    key: str  # the message id, or a digest of the body when the message has none
    message_id: str | None
    event_type: str | None
    job_id: str | None
    reason: str
    origin: str | None  # the queue it died in, where a re-queue sends it back
    dead_lettered_at: datetime | None
    attempts: int | None
    size: int
    preview: str


def _latest_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    return deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping) else {}


def _when(headers: Mapping[str, Any], death: Mapping[str, Any]) -> datetime | None:
    if isinstance(stamp := headers.get(DEAD_AT_HEADER), int | float):
        return datetime.fromtimestamp(stamp, UTC)
    when = death.get("time")
    return when if isinstance(when, datetime) else None


def _envelope(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _attempts(death: Mapping[str, Any], envelope: Mapping[str, Any]) -> int | None:
    """Tries of the job: the event's own attempt count, or the broker's delivery limit that killed it.

    The x-delivery-count header is no guide: the dead-letter queue rewrites it every time it is read.
    """
    if death.get("reason") == "delivery_limit":
        return DELIVERY_LIMIT + 1
    data = envelope.get("data")
    attempt = data.get("attempt") if isinstance(data, dict) else None
    if not isinstance(attempt, int):
        return None
    # A job's attempt counts the tries before this message (0 first); a webhook's counts from 1.
    return attempt if envelope.get("type") == EventType.WEBHOOK_DELIVERY else attempt + 1


def _reason(headers: Mapping[str, Any], death: Mapping[str, Any]) -> str:
    if isinstance(reason := headers.get(REASON_HEADER), str):
        return reason
    if death:
        return f"{death.get('reason', 'dead-lettered')} by the broker"
    return "unknown"


def key_of(body: bytes, message_id: str | None) -> str:
    return message_id or f"sha256-{hashlib.sha256(body).hexdigest()[:16]}"


def describe(body: bytes, headers: Mapping[str, Any], message_id: str | None) -> DeadLetter:
    death, envelope = _latest_death(headers), _envelope(body)
    origin = headers.get(QUEUE_HEADER) or death.get("queue")
    event_type = envelope.get("type") or headers.get("x-luster-event-type")
    job_id = envelope.get("job_id")
    return DeadLetter(
        key=key_of(body, message_id),
        message_id=message_id or None,
        event_type=event_type if isinstance(event_type, str) else None,
        job_id=job_id if isinstance(job_id, str) else None,
        reason=_reason(headers, death),
        origin=origin if isinstance(origin, str) else None,
        dead_lettered_at=_when(headers, death),
        attempts=_attempts(death, envelope),
        size=len(body),
        preview=body[:PREVIEW_CHARS].decode("utf-8", errors="replace"),
    )


def revived_headers(headers: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The headers a re-queued copy carries: trace context and event type, no record of its death."""
    kept = {str(k): v for k, v in headers.items() if str(k) not in DEATH_HEADERS}
    return {**kept, "x-luster-requeued-at": int(now)}
