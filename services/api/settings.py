"""The API's settings: the shared base plus HTTP and upload limits."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from shared.settings import (
    FairShareSettings,
    HttpServiceSettings,
    MetricsSettings,
    StorageSettings,
    WebhookSettings,
)


class ApiSettings(HttpServiceSettings, StorageSettings, FairShareSettings, WebhookSettings, MetricsSettings):
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # A batch's photos sent in one form, all together: a listing of 60 photos of 4 MB fits.
    max_batch_upload_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # Well under Pillow's own bomb threshold (89 M pixels); a 48 MP camera frame still fits.
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    # Checked from the header before decoding too: a longest side, and how elongated a photo may be.
    max_image_side: int = Field(default=12_000, ge=16, le=65_535)
    max_image_aspect_ratio: float = Field(default=20.0, ge=1.0, le=1000.0)
    # Bytes of uploads held in memory at once per instance, all requests together (services/api/spool.py);
    # past it an upload waits in a temporary file. 64 photos of 2 MB arriving together fit in the default.
    upload_memory_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
    # Decodes at once per instance (each may hold MAX_IMAGE_PIXELS x 4 bytes); one per CPU by default.
    max_concurrent_decodes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    # A JSON body is parsed whole in memory: its own cap, far below the upload cap.
    max_json_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Parts in one multipart form (a job form has five fields at most).
    max_form_parts: int = Field(default=16, ge=2, le=1000)
    # Seconds the whole request body may take to arrive; a slower client is cut off with 408.
    body_read_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    outbox_relay_interval: float = Field(default=2.0, gt=0)
    # How often this instance tells the monitor it is alive and what it answered (services/api/heartbeat.py).
    heartbeat_interval: float = Field(default=10.0, gt=0, le=300)
    # A trace UI (Jaeger: http://localhost:16686) to link each job's trace from GET /jobs/{id}.
    trace_ui_url: str | None = None
    # Each API key's limits unless the key sets its own: uploads and job submissions a minute (each),
    # jobs queued or processing at once, and bytes of photos stored a day.
    requests_per_minute: int = Field(default=10, ge=1, le=100_000)
    jobs_in_flight: int = Field(default=100, ge=1, le=1_000_000)
    bytes_per_day: int = Field(default=2 * 1024**3, ge=1024)
    # How long an Idempotency-Key names its job; after that the key may start a new one.
    idempotency_ttl_s: float = Field(default=24 * 3600.0, gt=0, le=30 * 24 * 3600)
    # Prompts checked by OpenAI's moderation endpoint before a job is accepted (services/api/moderation.py).
    moderation: Literal["off", "openai"] = "off"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    moderation_model: str = "omni-moderation-latest"
    moderation_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Browser origins allowed to call the api (CORS), comma-separated; none by default.
    cors_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return [origin.strip() for origin in value.split(",") if origin.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _moderation_is_configured(self) -> ApiSettings:
        if self.moderation == "openai" and not self.openai_api_key:
            raise ValueError("OPENAI_API_KEY is required when MODERATION=openai")
        return self
