"""The API's answers as typed models; tests/client/test_drift.py holds them to GET /openapi.json."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

JobStatus = Literal["queued", "processing", "succeeded", "failed", "canceled"]
Tier = Literal["free", "premium"]
Style = Literal["default", "bright_airy", "dusk", "sky_replacement", "lawn_cleanup"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
STYLES: tuple[str, ...] = get_args(Style)
TIERS: tuple[str, ...] = get_args(Tier)


class _Answer(BaseModel):
    # A field the API adds later must not break an installed client; the drift test is what notices it.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ErrorDetail(_Answer):
    code: str
    message: str
    field: str | None = None


class ErrorBody(_Answer):
    error: ErrorDetail


class Asset(_Answer):
    id: uuid.UUID
    content_type: str
    size: int
    width: int
    height: int
    sha256: str
    created_at: datetime


class AssetEnvelope(_Answer):
    asset: Asset


class AssetPage(_Answer):
    assets: list[Asset]
    next_cursor: str | None


class DirectUpload(_Answer):
    """A presigned form: POST `fields`, then the photo as `file_field`, to `url`; then POST `complete_url`."""

    asset_id: uuid.UUID
    method: Literal["POST"]
    url: str
    fields: dict[str, str]
    file_field: Literal["file"]
    max_bytes: int
    expires_in_s: int
    complete_url: str


class DirectUploadEnvelope(_Answer):
    upload: DirectUpload


class JobError(_Answer):
    code: str
    message: str


class JobAttempt(_Answer):
    number: int
    started_at: datetime
    ended_at: datetime | None
    worker_id: str | None
    outcome: Literal["succeeded", "failed", "retrying", "lost"] | None
    error_code: str | None


class JobTimings(_Answer):
    queue_wait_s: float | None
    processing_s: float | None
    total_s: float | None
    attempts: list[JobAttempt]


WebhookEvent = Literal["started", "succeeded", "failed", "canceled"]


class WebhookAttempt(_Answer):
    webhook_id: str
    event: str
    attempt: int
    outcome: Literal["delivered", "failed", "gone", "refused"]
    response_status: int | None
    duration_ms: float
    error: str | None
    created_at: datetime


class JobWebhook(_Answer):
    url: str
    events: list[WebhookEvent]
    deliveries: list[WebhookAttempt]


class WebhookSecret(_Answer):
    key_id: uuid.UUID
    secret: str


class WebhookSecretEnvelope(_Answer):
    webhook_secret: WebhookSecret


class Job(_Answer):
    id: uuid.UUID
    status: JobStatus
    tier: Tier
    style: Style
    prompt: str
    asset_id: uuid.UUID
    attempts: int
    output_url: str | None
    error: JobError | None
    cost: Decimal
    engine: str | None
    fallback_reason: str | None
    structure_score: float | None
    flagged: bool
    trace_id: str | None
    trace_url: str | None = None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    queue_position: int | None = None
    eta_seconds: float | None = None
    timings: JobTimings | None = None
    batch_id: uuid.UUID | None = None
    webhook: JobWebhook | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class JobEnvelope(_Answer):
    job: Job


class JobPage(_Answer):
    jobs: list[Job]
    next_cursor: str | None


class BatchCounts(_Answer):
    queued: int
    processing: int
    succeeded: int
    failed: int
    canceled: int


class BatchSummary(_Answer):
    id: uuid.UUID
    status: Literal["running", "completed"]
    total: int
    counts: BatchCounts
    eta_seconds: float | None = None
    webhook_url: str | None
    webhook_events: list[str] | None
    created_at: datetime
    completed_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status == "completed"


class Batch(BatchSummary):
    jobs: list[Job]


class BatchEnvelope(_Answer):
    batch: Batch


class BatchPage(_Answer):
    batches: list[BatchSummary]
    next_cursor: str | None
