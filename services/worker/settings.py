"""The worker's settings: the shared base plus concurrency, engine choice, retries and timeouts."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shared.settings import FairShareSettings, StorageSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class WorkerSettings(StorageSettings, FairShareSettings):
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=200)
    concurrency: int = Field(default=2, ge=1, le=64)
    # When both tiers wait, this many premium jobs start for each free one.
    premium_share: int = Field(default=3, ge=1, le=100)
    engine: Literal["local", "openai"] = "local"
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-image-1"
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    # Far below RabbitMQ's 30-minute consumer_timeout, so the broker never redelivers a live job.
    job_timeout: float = Field(default=300.0, gt=0, le=1200)
    max_attempts: int = Field(default=3, ge=1, le=20)
    heartbeat_interval: float = Field(default=5.0, gt=0, le=300)
    shutdown_grace: float = Field(default=60.0, ge=0, le=3600)
    # How often this worker looks for jobs whose worker is gone (see sweeper.py).
    sweep_interval: float = Field(default=10.0, gt=0, le=3600)
    # Photos, outputs and finished jobs older than this many days are deleted (hourly); 0 keeps them.
    retention_days: float = Field(default=90.0, ge=0, le=36500)
    # How often the broker is asked whether our consumers are registered, and how long it may say
    # no (or not answer) before the worker exits non-zero for its platform to restart it.
    watchdog_interval: float = Field(default=5.0, gt=0, le=600)
    broker_give_up_after: float = Field(default=120.0, gt=0, le=3600)
    # Scales the retry backoff ladder (shared.topology.RETRY_DELAYS_MS); only tests compress it.
    retry_delay_scale: float = Field(default=1.0, gt=0, le=1.0)

    @model_validator(mode="after")
    def _engine_is_configured(self) -> WorkerSettings:
        if self.engine == "openai" and not self.openai_api_key:
            raise ValueError("OPENAI_API_KEY is required when ENGINE=openai")
        return self
