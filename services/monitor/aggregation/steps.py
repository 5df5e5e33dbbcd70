"""The step of a job one event states, alike whether it came off the broker or was replayed from job_events."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.domain import Tier
from shared.events import (
    Event,
    JobCanceled,
    JobFailed,
    JobQueued,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    Payload,
)


class Kind(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELED = "canceled"


@dataclass(frozen=True)
class Step:
    """One step of one job; times are epoch seconds."""

    kind: Kind
    job_id: uuid.UUID
    tier: Tier
    attempt: int
    at: float
    queued_at: float | None = None
    started_at: float | None = None  # when this attempt started, when the source knows it
    processing_s: float | None = None  # the worker's own measure, for when the start was not seen
    error_code: str | None = None

    @property
    def key(self) -> bytes:
        """The same for a redelivered event and for its row in job_events, so neither counts twice.

        Bytes, not a tuple holding a UUID: the aggregator keeps tens of thousands of these.
        """
        return self.job_id.bytes + f"{self.kind.value}:{self.attempt}".encode()


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def from_event(event: Event, payload: Payload) -> Step | None:
    """The step a job event states; None for worker events and job events without a job id."""
    if event.job_id is None:
        return None
    step = functools.partial(Step, job_id=event.job_id, at=_ts(event.occurred_at))
    match payload:
        case JobQueued(tier=tier, attempt=attempt):
            return step(Kind.QUEUED, tier=tier, attempt=attempt, queued_at=_ts(event.occurred_at))
        case JobStarted(tier=tier, attempt=attempt, queued_at=queued):
            return step(Kind.STARTED, tier=tier, attempt=attempt, queued_at=_ts(queued))
        case JobSucceeded(tier=tier, attempt=attempt, queued_at=queued, processing_ms=ms):
            return step(Kind.SUCCEEDED, tier=tier, attempt=attempt, queued_at=_ts(queued), processing_s=ms / 1000)
        case JobFailed(tier=tier, attempt=attempt, queued_at=queued, error_code=code):
            return step(Kind.FAILED, tier=tier, attempt=attempt, queued_at=_ts(queued), error_code=code)
        case JobRetrying(tier=tier, attempt=attempt, error_code=code):
            return step(Kind.RETRYING, tier=tier, attempt=attempt, error_code=code)
        case JobCanceled(tier=tier):
            return step(Kind.CANCELED, tier=tier, attempt=0)
    return None


ROW_KINDS = {f"job.{kind.value}": kind for kind in Kind}


def from_row(row: dict[str, Any]) -> Step | None:
    """A step from a replayed job_events row (see replay.REPLAY for the columns)."""
    kind = ROW_KINDS.get(row["type"])
    if kind is None:
        return None
    # The initial queued event and a cancellation happen once per job; events count them as attempt 0.
    attempt = 0 if kind in (Kind.QUEUED, Kind.CANCELED) else int(row["attempt"])
    details = row["details"] or {}
    return Step(
        kind,
        row["job_id"],
        Tier(row["tier"]),
        attempt,
        _ts(row["created_at"]),
        queued_at=_ts(row["queued_at"]),
        started_at=_ts(row["started_at"]) if row["started_at"] and kind is not Kind.STARTED else None,
        error_code=details.get("error_code"),
    )
