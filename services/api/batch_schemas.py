"""HTTP bodies of the batch endpoints (a listing's photos submitted together); jobs are those of schemas.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.api.schemas import (
    EXAMPLE_ASSET_ID,
    PROMPT_MAX_LENGTH,
    PROMPT_PATTERN,
    WEBHOOK_EVENTS_FIELD,
    WEBHOOK_URL_FIELD,
    JobCreate,
    JobOut,
    WebhookEvents,
    clean_prompt,
    cursor_field,
    idempotency_key_field,
)
from shared.batches import Batch, Progress
from shared.domain import JobStatus, Style, Tier
from shared.jobs import Job

MAX_BATCH_JOBS = 100
BATCH_PROMPT_FIELD: Any = Field(
    default=None,
    min_length=1,
    max_length=PROMPT_MAX_LENGTH,
    pattern=PROMPT_PATTERN,
    description="Every job's prompt unless it names its own.",
)
EXAMPLE_BATCH: dict[str, Any] = {
    "tier": "free",
    "style": "bright_airy",
    "jobs": [
        {"asset_id": EXAMPLE_ASSET_ID, "prompt": "Brighter and warmer; keep the furniture"},
        {"asset_id": "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f", "style": "dusk"},
    ],
    "webhook_url": "https://hooks.example.com/luster",
    "webhook_events": ["succeeded", "failed"],
}


class BatchJobCreate(JobCreate):
    """One photo of a batch: a job request on an uploaded asset (no inline `file` here). What it names
    (prompt, tier, style, webhook) stands in for the batch's."""

    # Its prompt or style may come from the batch: BatchCreate says when one is needed.
    model_config = ConfigDict(json_schema_extra={})

    asset_id: uuid.UUID = Field(description="An uploaded asset of yours.")


SHARED_OPTIONS = ("prompt", "tier", "style")
_PROMPT_OR_STYLE: list[JsonValue] = [{"required": ["prompt"]}, {"required": ["style"]}]
# A batch's own prompt or style, which a job without its own takes (a null one is no prompt at all).
_SHARED_PROMPT_OR_STYLE: list[JsonValue] = [
    {"required": [name], "properties": {name: {"type": "string"}}} for name in ("prompt", "style")
]


class SharedOptions(BaseModel):
    """What every job of a batch takes unless it names its own, and where the batch's webhook goes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prompt: str | None = BATCH_PROMPT_FIELD
    tier: Tier | None = Field(default=None, description="Every job's tier unless it names its own (default free).")
    style: Style | None = Field(default=None, description="Every job's style unless it names its own.")
    # Every job's, unless the job names its own; the batch's completion goes to this one.
    webhook_url: str | None = WEBHOOK_URL_FIELD
    webhook_events: WebhookEvents | None = WEBHOOK_EVENTS_FIELD

    @field_validator("prompt")
    @classmethod
    def _cleaned(cls, prompt: str | None) -> str | None:
        return clean_prompt(prompt) if prompt is not None else None


class BatchCreate(SharedOptions):
    """A listing's photos, each a job, submitted and followed together."""

    model_config = ConfigDict(
        json_schema_extra={
            # A prompt or a style for every job: the batch's, or each job's own.
            "anyOf": [*_SHARED_PROMPT_OR_STYLE, {"properties": {"jobs": {"items": {"anyOf": _PROMPT_OR_STYLE}}}}],
            "examples": [EXAMPLE_BATCH],
        },
    )

    jobs: list[BatchJobCreate] = Field(min_length=1, max_length=MAX_BATCH_JOBS)

    @model_validator(mode="before")
    @classmethod
    def _shared_options_into_jobs(cls, data: Any) -> Any:
        """Each job as the batch's options overridden by its own, validated as one job request."""
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            return data
        shared = {name: data[name] for name in SHARED_OPTIONS if data.get(name) is not None}
        return {**data, "jobs": [{**shared, **job} if isinstance(job, dict) else job for job in data["jobs"]]}


class BatchPhotos(SharedOptions):
    """POST /batches as a multipart form: the photos themselves (a `file` part each, in order) and the
    options every one of their jobs takes."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": _SHARED_PROMPT_OR_STYLE,
            "examples": [{"tier": "free", "style": "bright_airy", "webhook_events": "succeeded,failed"}],
        }
    )

    @model_validator(mode="after")
    def _prompt_or_style(self) -> BatchPhotos:
        if self.prompt is None and self.style is None:
            missing = PydanticCustomError("missing", "required unless the batch names a style")
            detail = InitErrorDetails(type=missing, loc=("prompt",), input=None)
            raise ValidationError.from_exception_data(type(self).__name__, [detail])
        return self

    def batch(self, asset_ids: list[uuid.UUID]) -> BatchCreate:
        """The batch these options make of the photos once they are assets."""
        jobs = [{"asset_id": str(asset_id)} for asset_id in asset_ids]
        return BatchCreate.model_validate({**self.model_dump(mode="json", exclude_none=True), "jobs": jobs})


class BatchHeaders(BaseModel):
    """Request headers of POST /batches (besides Authorization)."""

    idempotency_key: str | None = idempotency_key_field("listing-4217", names="batch")


class BatchCounts(BaseModel):
    queued: int
    processing: int
    succeeded: int
    failed: int
    canceled: int


class BatchSummary(BaseModel):
    id: uuid.UUID
    status: Literal["running", "completed"] = Field(description="`completed` once every job has finished.")
    total: int = Field(description="Jobs in the batch.")
    counts: BatchCounts
    webhook_url: str | None
    webhook_events: list[str] | None
    created_at: datetime
    completed_at: datetime | None = Field(description="When its last job finished; null until every job has.")
    eta_seconds: float | None = Field(
        default=None,
        description="Estimated seconds until its last job is done, from its tiers' recent pace (as a job's "
        "`eta_seconds`); null without recent history, once it is completed, and in lists.",
    )

    @classmethod
    def fields_of(cls, batch: Batch, progress: Progress, eta_seconds: float | None = None) -> dict[str, object]:
        counts = BatchCounts(**{status.value: progress.counts.get(status, 0) for status in JobStatus})
        return {
            "id": batch.id,
            "status": "completed" if progress.done else "running",
            "total": progress.total,
            "counts": counts,
            "webhook_url": batch.webhook_url,
            "webhook_events": batch.webhook_events,
            "created_at": batch.created_at,
            "completed_at": (batch.completed_at or progress.last_completed_at) if progress.done else None,
            "eta_seconds": eta_seconds,
        }

    @classmethod
    def of(cls, batch: Batch, progress: Progress) -> BatchSummary:
        return cls.model_validate(cls.fields_of(batch, progress))


class BatchOut(BatchSummary):
    jobs: list[JobOut] = Field(description="Every job, in the order the request listed them.")

    @classmethod
    def with_jobs(cls, batch: Batch, jobs: list[Job], eta_seconds: float | None = None) -> BatchOut:
        fields = cls.fields_of(batch, Progress.of(jobs), eta_seconds)
        return cls.model_validate({**fields, "jobs": [JobOut.of(job) for job in jobs]})


class BatchEnvelope(BaseModel):
    batch: BatchOut


class BatchPage(BaseModel):
    batches: list[BatchSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class BatchEvent(BaseModel):
    """One event of GET /batches/{batch_id}/events; the keepalives between them are comments."""

    event: Literal["job", "batch.completed"] = Field(
        description="`job`: a job as it now stands, first each job, then at each change; `batch.completed`: the "
        "batch once every job has finished, the last event before the stream ends."
    )
    data: str = Field(
        description="JSON: a job (as `JobOut`) or the batch's summary (as `BatchSummary`, without its jobs).",
        json_schema_extra={"contentMediaType": "application/json"},
    )


class BatchListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: str | None = cursor_field()
    limit: int = Field(default=25, ge=1, le=100, examples=[10])
