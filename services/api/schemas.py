"""HTTP request and response bodies; the handlers validate with these and the OpenAPI document is built from them."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.assets import Asset
from shared.domain import JobStatus, Style, Tier
from shared.jobs import Job

PROMPT_MAX_LENGTH = 1000


class JobCreate(BaseModel):
    """A job request; multipart form fields and JSON bodies validate the same way."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    asset_id: uuid.UUID | None = Field(
        default=None, description="An uploaded asset; omit it when sending `file` inline."
    )
    prompt: str = Field(min_length=1, max_length=PROMPT_MAX_LENGTH, description="What to enhance, in words.")
    tier: Tier = Tier.FREE
    style: Style = Style.DEFAULT

    @field_validator("prompt")
    @classmethod
    def _storable(cls, prompt: str) -> str:
        # PostgreSQL text cannot hold NUL: refuse it here instead of failing at the INSERT.
        if "\x00" in prompt:
            raise ValueError("must not contain NUL characters")
        return prompt


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
    cost: Decimal
    trace_id: str | None
    trace_url: str | None = None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, job: Job, *, trace_ui_url: str | None = None) -> JobOut:
        error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
        done = job.status is JobStatus.SUCCEEDED
        return cls(
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
            trace_id=job.trace_id,
            trace_url=f"{trace_ui_url.rstrip('/')}/trace/{job.trace_id}" if trace_ui_url and job.trace_id else None,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )


class JobEnvelope(BaseModel):
    job: JobOut


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    tier: Tier | None = None
    cursor: str | None = None
    limit: int = Field(default=20, ge=1, le=100)


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["healthy", "unhealthy"]
    services: dict[str, Literal["healthy", "unhealthy"]]
    version: str
    environment: str
