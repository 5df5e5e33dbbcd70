"""The worker's settings: the shared base plus concurrency, engine choice, retries and timeouts."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from services.worker.engines.structure import STRUCTURE_THRESHOLD
from shared.domain import Tier
from shared.settings import FairShareSettings, MetricsSettings, SpendSettings, StorageSettings, WebhookSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


# "noop" is test-only (engines/noop.py): it enhances nothing, and production refuses it.
EngineName = Literal["local", "openai", "noop"]


class WorkerSettings(StorageSettings, FairShareSettings, SpendSettings, WebhookSettings, MetricsSettings):
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=200)
    concurrency: int = Field(default=2, ge=1, le=64)
    # When both tiers wait, this many premium jobs start for each free one.
    premium_share: int = Field(default=3, ge=1, le=100)
    # The engine every tier uses, unless ENGINE_FREE / ENGINE_PREMIUM name another for theirs.
    engine: EngineName = "local"
    engine_free: EngineName | None = None
    engine_premium: EngineName | None = None
    # When the paid engine is down, rate-limited, out of quota or over the daily budget: "wait" retries
    # the job later through the delay queues; "local" enhances it with the local engine at once.
    engine_fallback: Literal["wait", "local"] = "wait"
    # The structure guard compares an output with its photo (services/worker/guard.py): on "generative"
    # engines' outputs only (the local engine cannot move a wall), on "all", or "off".
    structure_guard: Literal["generative", "all", "off"] = "generative"
    # Below this score an output is flagged; then "deliver" it flagged, "fail" the job, or "retry" once
    # with a stricter prompt and fail if that one is flagged too.
    structure_threshold: float = Field(default=STRUCTURE_THRESHOLD, gt=0, lt=1)
    structure_policy: Literal["deliver", "fail", "retry"] = "retry"
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
    # Webhooks this worker sends at once, how long a receiver has to answer, and how many attempts a
    # delivery gets (backoff: shared.topology.WEBHOOK_RETRY_DELAYS_MS, scaled like the jobs' retries).
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=7, ge=1, le=7)
    # The port of this worker's own /metrics for Prometheus (services/worker/metrics.py); 0: one the
    # system picks (tests, several workers on one machine), logged as `metrics.serving`.
    metrics_port: int = Field(default=9102, ge=0, le=65535)

    def engine_for(self, tier: Tier) -> EngineName:
        chosen = {Tier.FREE: self.engine_free, Tier.PREMIUM: self.engine_premium}[tier]
        return chosen or self.engine

    @model_validator(mode="after")
    def _engine_is_configured(self) -> WorkerSettings:
        users = [f"ENGINE_{tier.value.upper()}" for tier in Tier if self.engine_for(tier) == "openai"]
        if users and not self.openai_api_key:
            named = "ENGINE" if self.engine == "openai" else " and ".join(users)
            raise ValueError(f"OPENAI_API_KEY is required when {named}=openai")
        return self

    @model_validator(mode="after")
    def _no_test_engine_in_production(self) -> WorkerSettings:
        named = {"ENGINE": self.engine, "ENGINE_FREE": self.engine_free, "ENGINE_PREMIUM": self.engine_premium}
        noop = [variable for variable, engine in named.items() if engine == "noop"]
        if noop and self.environment == "production":
            raise ValueError(
                f"{noop[0]}=noop in production: the no-op engine enhances nothing (benchmarks and tests only)"
            )
        return self
