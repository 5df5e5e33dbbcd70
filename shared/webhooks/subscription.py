"""What a job (or a batch) asks to hear about, and where."""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum
from typing import Final

from shared.domain import JobStatus


class WebhookEvent(StrEnum):
    """The job changes a webhook can ask for; `batch.completed` goes to every batch webhook."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# Without a filter, a webhook hears how its job ended: the completion webhook most receivers want.
DEFAULT_EVENTS: Final = (WebhookEvent.SUCCEEDED, WebhookEvent.FAILED, WebhookEvent.CANCELED)

EVENT_OF_STATUS: Final = {
    JobStatus.PROCESSING: WebhookEvent.STARTED,
    JobStatus.SUCCEEDED: WebhookEvent.SUCCEEDED,
    JobStatus.FAILED: WebhookEvent.FAILED,
    JobStatus.CANCELED: WebhookEvent.CANCELED,
}


def event_names(events: Collection[WebhookEvent] | None) -> list[str] | None:
    """A filter as stored on a job or batch (None: the default events)."""
    return [event.value for event in events] if events else None


def wanted(status: JobStatus, url: str | None, events: Collection[str] | None) -> WebhookEvent | None:
    """The event a move into `status` announces to a webhook at `url` filtered by `events`; None for none."""
    event = EVENT_OF_STATUS.get(status)
    if url is None or event is None:
        return None
    return event if event in (events if events is not None else DEFAULT_EVENTS) else None
