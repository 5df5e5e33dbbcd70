"""The monitor's settings: the shared base plus HTTP, admin access, check cadence and alert thresholds."""

from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr

from shared.settings import HttpServiceSettings

Window = Literal["1m", "5m", "1h"]
LatencyMetric = Literal["queue_wait", "processing", "end_to_end"]


class MonitorSettings(HttpServiceSettings):
    port: int = Field(default=8001, ge=1, le=65535)

    # Without a password the admin routes answer 503: never an open dashboard by accident.
    admin_username: str = Field(default="admin", min_length=1, max_length=200)
    admin_password: SecretStr | None = Field(default=None, min_length=8)
    auth_max_failures: int = Field(default=5, ge=1, le=1000)
    auth_lockout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Behind Railway's proxy every client shares the proxy's address; only then trust X-Forwarded-For.
    trust_forwarded_for: bool = False

    check_interval: float = Field(default=5.0, gt=0, le=300)
    heartbeat_stale_factor: float = Field(default=3.0, ge=1.0, le=100)
    rabbitmq_management_url: AnyHttpUrl | None = None
    dead_letter_peek_limit: int = Field(default=100, ge=1, le=1000)
    dashboard_refresh_seconds: float = Field(default=5.0, ge=0.5, le=300)

    alert_error_rate: float = Field(default=0.05, ge=0, le=1)
    alert_failure_rate: float = Field(default=0.10, ge=0, le=1)
    alert_failure_window: Window = "1h"
    alert_latency_p95_seconds: float = Field(default=2.0, gt=0)
    alert_latency_metric: LatencyMetric = "queue_wait"
    alert_queue_depth: int = Field(default=50, ge=0)
    alert_consecutive_checks: int = Field(default=3, ge=1, le=100)
    alert_min_samples: int = Field(default=10, ge=1)
    alert_history_size: int = Field(default=200, ge=1, le=10_000)
    alert_webhook_url: AnyHttpUrl | None = None
    alert_webhook_timeout: float = Field(default=5.0, gt=0, le=60)

    sentry_free_spans: int = Field(default=100_000, ge=1)
    sentry_spans_per_request: float = Field(default=5.0, gt=0)
    sentry_requests_per_job: float = Field(default=5.0, gt=0)
    budget_refresh_interval: float = Field(default=60.0, gt=0, le=86_400)
