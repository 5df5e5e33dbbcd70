"""HTTP request and response bodies; the handlers validate with these and the OpenAPI document is built from them."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.assets import Asset
from shared.domain import JobStatus, Style, Tier
from shared.jobs import Job
from shared.pagination import encode_cursor
from shared.progress import Progress
from shared.telemetry.tracing import trace_link
from shared.webhooks.deliveries import DeliveryAttempt
from shared.webhooks.subscription import DEFAULT_EVENTS, WebhookEvent
from shared.webhooks.targets import URL_MAX_LENGTH

PROMPT_MAX_LENGTH = 1000
# At least one character clean_prompt keeps: not white space (Python's, spelled out: JSON Schema's `\s`
# differs), not a control, format or private-use character of the Basic Multilingual Plane. clean_prompt
# removes exactly these, so the document says precisely which prompts the server takes.
_INVISIBLE = (
    r"\x00-\x20\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u1680\u180e\u2000-\u200f\u2028-\u202f"
    r"\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb"
)
PROMPT_PATTERN = rf"[^{_INVISIBLE}]"
_INVISIBLE_CHARACTER = re.compile(rf"[{_INVISIBLE}]")
# Cursors are URL-safe base64 (shared/pagination.py encode_cursor); only one the API issued names a page.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"
CURSOR_MAX_LENGTH = 512
# Visible ASCII only; services/api/app.py HEADER_RULES refuses anything else before a handler runs.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"
# The document's examples (the docs page fills its forms with them): each valid for its schema, and the
# cursor one the server takes, a real position (schemathesis sends the examples and expects no refusal).
EXAMPLE_ASSET_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXAMPLE_JOB_ID = "0b7e4f8a-9d2c-4e51-a3f6-5c8d1e2f7a90"
EXAMPLE_CURSOR = encode_cursor(datetime(2026, 5, 1, 12, 0, tzinfo=UTC), uuid.UUID(EXAMPLE_JOB_ID))


def clean_prompt(prompt: str) -> str:
    """The words a person can see: NFC, without the characters of `_INVISIBLE`, runs of white space as one space.

    Invisible characters (zero-width spaces, bidi overrides, controls) can hide instructions from a reader
    of the job that the engine still follows; a prompt that was nothing but them is refused. The set is the
    one PROMPT_PATTERN names, so the document and the server agree on every prompt.
    """
    spaced = _INVISIBLE_CHARACTER.sub(_space_or_nothing, unicodedata.normalize("NFC", prompt))
    cleaned = " ".join(spaced.split())
    if not cleaned:
        raise ValueError("must contain visible words")
    return cleaned


def _space_or_nothing(match: re.Match[str]) -> str:
    return " " if match.group().isspace() else ""


def _undocumented_default(schema: dict[str, Any]) -> None:
    # An omitted prompt is stored as "", which no client may send: documenting it as the default would say it may.
    schema.pop("default", None)


def cursor_field() -> Any:
    return Field(
        default=None,
        examples=[EXAMPLE_CURSOR],
        min_length=1,
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page, as it was given; any other value is a 422.",
    )


def _comma_separated(value: object) -> object:
    """A form field's "started,succeeded" as the list a JSON body sends (spaces around a name allowed)."""
    return [part.strip(" ") for part in value.split(",")] if isinstance(value, str) else value


def _distinct(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return sorted(set(events))


WebhookEvents = Annotated[list[WebhookEvent], BeforeValidator(_comma_separated), AfterValidator(_distinct)]
WEBHOOK_URL_FIELD: Any = Field(
    default=None,
    min_length=8,
    max_length=URL_MAX_LENGTH,
    pattern=r"^https?://[\x21-\x7e]+$",  # visible ASCII: a host with other letters comes punycoded
    description="Where to POST the job's state changes, signed per Standard Webhooks with your key's secret "
    "(`GET /webhooks/secret`). Public addresses only.",
)
WEBHOOK_EVENTS_FIELD: Any = Field(
    default=None,
    min_length=1,
    description="Which changes to send (a form sends them comma-separated); default: succeeded, failed, canceled.",
)
_EVENT_NAME = f"({'|'.join(WebhookEvent)})"
# How a form field says what a JSON body's array does: one part, the names comma-separated.
FORM_FIELDS: dict[str, dict[str, Any]] = {
    "webhook_events": {
        "type": "string",
        "pattern": f"^ *{_EVENT_NAME} *(, *{_EVENT_NAME} *)*$",
        "description": WEBHOOK_EVENTS_FIELD.description,
    }
}


class JobCreate(BaseModel):
    """A job request; multipart form fields and JSON bodies validate the same way."""

    # A style's preset is a whole brief on its own: a job that names one may leave the prompt out.
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "anyOf": [{"required": ["prompt"]}, {"required": ["style"]}],
            "examples": [
                {"asset_id": EXAMPLE_ASSET_ID, "prompt": "Brighter and warmer; keep the furniture", "tier": "free"}
            ],
        },
    )

    asset_id: uuid.UUID | None = Field(
        default=None, description="An uploaded asset; omit it when sending `file` inline."
    )
    prompt: str = Field(
        default="",
        min_length=1,
        max_length=PROMPT_MAX_LENGTH,
        pattern=PROMPT_PATTERN,
        description="What to enhance, in words: at least one visible character. Optional when `style` is sent.",
        json_schema_extra=_undocumented_default,
    )
    tier: Tier = Tier.FREE
    style: Style = Style.DEFAULT
    webhook_url: str | None = WEBHOOK_URL_FIELD
    webhook_events: WebhookEvents | None = WEBHOOK_EVENTS_FIELD

    @field_validator("prompt")
    @classmethod
    def _cleaned(cls, prompt: str) -> str:
        return clean_prompt(prompt)

    @model_validator(mode="after")
    def _prompt_or_style(self) -> JobCreate:
        if not self.model_fields_set & {"prompt", "style"}:
            missing = PydanticCustomError("missing", "required unless the job names a style")
            detail = InitErrorDetails(type=missing, loc=("prompt",), input=None)
            raise ValidationError.from_exception_data(type(self).__name__, [detail])
        return self


class AssetOut(BaseModel):
    id: uuid.UUID
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, asset: Asset) -> AssetOut:
        return cls(
            id=asset.id,
            content_type=asset.content_type,
            size=asset.size_bytes,
            width=asset.width,
            height=asset.height,
            sha256=asset.sha256,
            created_at=asset.created_at,
        )


class AssetEnvelope(BaseModel):
    asset: AssetOut


class AssetPage(BaseModel):
    assets: list[AssetOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class AssetListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: str | None = cursor_field()
    limit: int = Field(default=25, ge=1, le=100, examples=[10])


class DirectUploadOut(BaseModel):
    """Where to send the photo: POST `url` as multipart/form-data with every field of `fields`, then `file`."""

    asset_id: uuid.UUID
    method: Literal["POST"] = "POST"
    url: str
    fields: dict[str, str]
    file_field: Literal["file"] = "file"
    max_bytes: int
    expires_in_s: int
    complete_url: str = Field(description="POST here once the store has the photo; the asset exists only then.")


class DirectUploadEnvelope(BaseModel):
    upload: DirectUploadOut


class JobError(BaseModel):
    code: str
    message: str


class JobAttempt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int = Field(description="1 for the first attempt, counting takeovers and retries.")
    started_at: datetime
    ended_at: datetime | None = Field(description="Null while the attempt runs.")
    worker_id: str | None = Field(description="The worker that ran it.")
    outcome: Literal["succeeded", "failed", "retrying", "lost"] | None = Field(
        description="How it ended: `retrying` queued the job again, `lost` means its worker vanished and another "
        "took the job over; null while it runs."
    )
    error_code: str | None = Field(description="Why a failed or retrying attempt ended so.")


class JobTimings(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    queue_wait_s: float | None = Field(
        description="Seconds from submission to the first start (a retry's later wait is not counted); "
        "null until the job has started."
    )
    processing_s: float | None = Field(
        description="Seconds spent processing, summed over the attempts that have ended; null until one has."
    )
    total_s: float | None = Field(description="Seconds from submission to completion; null until the job is done.")
    attempts: list[JobAttempt] = Field(description="Every attempt, oldest first.")


class WebhookAttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt at one message.")
    event: str = Field(description="`job.started`, `job.succeeded`, `job.failed`, `job.canceled` or `batch.completed`.")
    attempt: int
    outcome: Literal["delivered", "failed", "gone", "refused"] = Field(
        description="`delivered`: a 2xx; `failed`: another answer or none (retried with backoff); `gone`: a 410, "
        "never retried; `refused`: the target resolved to a private address and was not called."
    )
    response_status: int | None
    duration_ms: float
    error: str | None
    created_at: datetime


class JobWebhook(BaseModel):
    url: str
    events: list[WebhookEvent]
    deliveries: list[WebhookAttemptOut] = Field(
        description="The newest delivery attempts, oldest first; empty in lists."
    )


class JobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    tier: Tier
    style: Style
    prompt: str
    asset_id: uuid.UUID
    attempts: int
    output_url: str | None
    error: JobError | None
    cost: Decimal = Field(description="US dollars billed for the job, failed attempts included.")
    engine: str | None = Field(description="The engine that produced the output; null until one has.")
    fallback_reason: str | None = Field(
        description="Why `engine` is not the tier's own: provider_unavailable, rate_limited, quota_exhausted "
        "or budget_exhausted; null when it is."
    )
    structure_score: float | None = Field(
        description="How closely the output keeps the photo's structure (1 = identical); null when not checked."
    )
    flagged: bool = Field(description="The output moved the property's structure: review it before publishing.")
    trace_id: str | None
    trace_url: str | None = None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    queue_position: int | None = Field(
        default=None,
        description="Jobs of its tier that will start before it while it is queued, 0 while it runs; null once "
        "it is done, and in lists.",
    )
    eta_seconds: float | None = Field(
        default=None,
        description="Estimated seconds until it is done, from its tier's recent queue throughput and processing "
        "times; null without recent history, once it is done, and in lists.",
    )
    timings: JobTimings | None = Field(default=None, description="Where its time went so far; null in lists.")
    batch_id: uuid.UUID | None = Field(default=None, description="The batch it was submitted with, if any.")
    webhook: JobWebhook | None = Field(default=None, description="Its webhook and the attempts to deliver to it.")

    @classmethod
    def of(
        cls,
        job: Job,
        *,
        trace_ui_url: str | None = None,
        progress: Progress | None = None,
        deliveries: Sequence[DeliveryAttempt] = (),
    ) -> JobOut:
        error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
        done = job.status is JobStatus.SUCCEEDED
        # Not validated again: a Job's fields already hold these types (the row as PostgreSQL typed it), and
        # checking them was a fifth of writing a submission's answer. The serializer still checks each value's type
        # as it writes it (a mismatch warns, which fails the tests).
        return cls.model_construct(
            id=job.id,
            status=job.status,
            tier=job.tier,
            style=job.style,
            prompt=job.prompt,
            asset_id=job.asset_id,
            attempts=job.attempts,
            output_url=f"/jobs/{job.id}/output" if done else None,
            error=error,
            cost=job.cost,
            engine=job.engine,
            fallback_reason=job.fallback_reason,
            structure_score=job.structure_score,
            flagged=job.flagged,
            trace_id=job.trace_id,
            trace_url=trace_link(trace_ui_url, job.trace_id),
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            queue_position=progress.queue_position if progress else None,
            eta_seconds=progress.eta_seconds if progress else None,
            timings=JobTimings.model_validate(progress.timings) if progress else None,
            batch_id=job.batch_id,
            webhook=_webhook(job, deliveries),
        )


def _webhook(job: Job, deliveries: Sequence[DeliveryAttempt]) -> JobWebhook | None:
    if job.webhook_url is None:
        return None
    events = [WebhookEvent(event) for event in job.webhook_events or DEFAULT_EVENTS]
    attempts = [WebhookAttemptOut.model_validate(attempt) for attempt in deliveries]
    return JobWebhook(url=job.webhook_url, events=events, deliveries=attempts)


class JobEnvelope(BaseModel):
    job: JobOut


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = Field(default=None, examples=[JobStatus.SUCCEEDED])
    tier: Tier | None = Field(default=None, examples=[Tier.PREMIUM])
    cursor: str | None = cursor_field()
    limit: int = Field(default=20, ge=1, le=100, examples=[10])


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


WAIT_PREFERENCE = Field(
    default=None,
    alias="Prefer",
    examples=["wait=5"],
    description="`wait=N` (N from 0 to 60): answer once the job has finished, or after N seconds, whichever "
    "is first; the answer says `Preference-Applied: wait=N`. Other preferences are ignored (RFC 7240).",
)


def idempotency_key_field(example: str, *, names: str) -> Any:
    """The `Idempotency-Key` header of a request that creates `names` (a job, a batch)."""
    return Field(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        examples=[example],
        description=f"Send the same key again to get the first {names} back instead of a second one (per key owner).",
    )


class WaitHeaders(BaseModel):
    """Request headers of GET /jobs/{job_id} (besides Authorization)."""

    prefer: str | None = WAIT_PREFERENCE


class JobHeaders(WaitHeaders):
    """Request headers of POST /jobs (besides Authorization)."""

    idempotency_key: str | None = idempotency_key_field("listing-4217-photo-3", names="job")


class WebhookSecretOut(BaseModel):
    key_id: uuid.UUID = Field(description="The API key whose deliveries this secret signs.")
    secret: str = Field(
        description="A Standard Webhooks secret (`whsec_` and base64): give it to any Standard Webhooks "
        "library to verify `webhook-signature`."
    )


class WebhookSecretEnvelope(BaseModel):
    webhook_secret: WebhookSecretOut


class HealthOut(BaseModel):
    status: Literal["healthy", "unhealthy"]
    services: dict[str, Literal["healthy", "unhealthy"]]
    version: str
    environment: str
