"""The wire contract: one envelope for every event, with a typed payload per event type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.domain import Style, Tier


class EventType(StrEnum):
    JOB_QUEUED = "job.queued"
    JOB_STARTED = "job.started"
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_RETRYING = "job.retrying"
    JOB_CANCELED = "job.canceled"
    WORKER_HEARTBEAT = "worker.heartbeat"
    WORKER_STOPPED = "worker.stopped"
    API_HEARTBEAT = "api.heartbeat"
    API_STOPPED = "api.stopped"
    WEBHOOK_DELIVERY = "webhook.delivery"


CONTRACT_VERSION: Final = 1


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JobQueued(Payload):
    asset_id: uuid.UUID
    tier: Tier
    style: Style
    prompt: str
    attempt: int = Field(default=0, ge=0)


class JobStarted(Payload):
    worker_id: str
    tier: Tier
    attempt: int
    queued_at: datetime


class JobSucceeded(Payload):
    worker_id: str
    tier: Tier
    attempt: int
    output_key: str
    width: int
    height: int
    cost: Decimal
    engine: str
    processing_ms: float
    queued_at: datetime
    # Added after version 1 shipped, optional so that either side may be deployed first... as long as
    # the monitor (which rejects fields it does not know) is deployed before the workers.
    fallback_reason: str | None = None
    structure_score: float | None = None
    flagged: bool = False


class JobFailed(Payload):
    worker_id: str | None
    tier: Tier
    attempt: int
    error_code: str
    error_message: str
    queued_at: datetime
    cost: Decimal = Decimal("0")  # what the job was billed in all, its failed attempts included
    structure_score: float | None = None


class JobRetrying(Payload):
    worker_id: str
    tier: Tier
    attempt: int
    delay_ms: int
    error_code: str
    error_message: str
    cost: Decimal = Decimal("0")  # what the failed attempt was billed


class JobCanceled(Payload):
    tier: Tier


class ProcessUsage(Payload):
    """What a service's process uses: CPU time since it started (user and system) and resident memory."""

    cpu_seconds: float = Field(ge=0)
    rss_bytes: int = Field(ge=0)


class WorkerHeartbeat(Payload):
    worker_id: str
    host: str
    started_at: datetime
    in_flight: int
    processed: int
    failed: int
    interval_s: float
    process: ProcessUsage | None = None
    concurrency: int | None = None  # engine processes: in_flight / concurrency is the executor's saturation


class WorkerStopped(Payload):
    worker_id: str
    host: str
    processed: int
    failed: int


class RouteTraffic(Payload):
    """One route's requests since the previous heartbeat: how many were answered with each status class
    ("2xx", "4xx", "5xx"…), and how long they took, as a mergeable DDSketch (protobuf, base64) in seconds."""

    route: str
    statuses: dict[str, int]
    latency_sketch: str


class ApiHeartbeat(Payload):
    """An api instance is alive; what it answered since its previous heartbeat (no message per request)."""

    instance_id: str
    host: str
    version: str
    started_at: datetime
    interval_s: float
    process: ProcessUsage
    routes: list[RouteTraffic] = Field(default_factory=list)


class ApiStopped(Payload):
    instance_id: str
    host: str


class WebhookDelivery(Payload):
    """A signed webhook to send: staged with the state change it announces, sent by a worker.

    `body` is the exact text the receiver gets (signed as it is, the same on every attempt); the
    secret stays in PostgreSQL and is read by `api_key_id` when signing.
    """

    webhook_id: str
    event: str
    url: str
    body: str
    api_key_id: uuid.UUID | None
    batch_id: uuid.UUID | None = None
    attempt: int = Field(default=1, ge=1)


PAYLOADS: Final[dict[EventType, type[Payload]]] = {
    EventType.JOB_QUEUED: JobQueued,
    EventType.JOB_STARTED: JobStarted,
    EventType.JOB_SUCCEEDED: JobSucceeded,
    EventType.JOB_FAILED: JobFailed,
    EventType.JOB_RETRYING: JobRetrying,
    EventType.JOB_CANCELED: JobCanceled,
    EventType.WORKER_HEARTBEAT: WorkerHeartbeat,
    EventType.WORKER_STOPPED: WorkerStopped,
    EventType.API_HEARTBEAT: ApiHeartbeat,
    EventType.API_STOPPED: ApiStopped,
    EventType.WEBHOOK_DELIVERY: WebhookDelivery,
}
TYPE_OF_PAYLOAD: Final = {model: event_type for event_type, model in PAYLOADS.items()}


class Event(BaseModel):
    """The envelope of DESIGN §4; `data` is validated against the payload model of `type`.

    Every field is required on the wire (a body without an id or a version is not an event);
    `make_event` fills them in for publishers.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID
    type: EventType
    version: int
    occurred_at: datetime
    job_id: uuid.UUID | None
    data: dict[str, Any]

    def payload(self) -> Payload:
        return PAYLOADS[self.type].model_validate(self.data)


class UndecodableEvent(Exception):
    """A message body that is not a valid event of a type and version we know."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def make_event(payload: Payload, *, job_id: uuid.UUID | None = None) -> Event:
    return Event(
        id=uuid.uuid4(),
        type=TYPE_OF_PAYLOAD[type(payload)],
        version=CONTRACT_VERSION,
        occurred_at=datetime.now(UTC),
        job_id=job_id,
        data=payload.model_dump(mode="json"),
    )


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(body: bytes) -> tuple[Event, Payload]:
    """Parse and validate a body; every way it can be wrong becomes one UndecodableEvent."""
    try:
        event = Event.model_validate_json(body)
    except ValidationError as error:
        raise UndecodableEvent(f"invalid envelope: {_first_problem(error)}") from error
    if event.version != CONTRACT_VERSION:
        raise UndecodableEvent(f"unsupported version {event.version} of {event.type}")
    try:
        return event, event.payload()
    except ValidationError as error:
        raise UndecodableEvent(f"invalid {event.type} data: {_first_problem(error)}") from error


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
