"""The API's settings: the shared base plus HTTP and upload limits."""

from __future__ import annotations

from pydantic import Field

from shared.settings import HttpServiceSettings, StorageSettings


class ApiSettings(HttpServiceSettings, StorageSettings):
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Well under Pillow's own bomb threshold (89 M pixels); a 48 MP camera frame still fits.
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    outbox_relay_interval: float = Field(default=2.0, gt=0)
    # A trace UI (Jaeger: http://localhost:16686) to link each job's trace from GET /jobs/{id}.
    trace_ui_url: str | None = None
