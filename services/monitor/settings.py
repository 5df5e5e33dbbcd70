"""The monitor's settings: the shared base plus HTTP, admin access, check cadence, alert thresholds, the
paid engine's daily cap and the fair share (an admin's cancel releases the owner's next held job)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from shared.settings import FairShareSettings, HttpServiceSettings, SecretHttpUrl, SpendSettings

Window = Literal["1m", "5m", "1h"]


class MonitorSettings(HttpServiceSettings, SpendSettings, FairShareSettings):
    port: int = Field(default=8001, ge=1, le=65535)

    # Without a password the admin routes answer 503: never an open dashboard by accident.
    admin_username: str = Field(default="admin", min_length=1, max_length=200)
    admin_password: SecretStr | None = Field(default=None, min_length=8)
    auth_max_failures: int = Field(default=5, ge=1, le=1000)
    # Failures against one user name from any addresses: higher than per client, since it locks the
    # real operator out too, yet it stops a guesser that spreads over many addresses.
    auth_max_user_failures: int = Field(default=20, ge=1, le=10_000)
    auth_lockout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed. Behind Railway's proxy every
    # client shares the proxy's address; anyone else could write any address there.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # A session (its CSRF token) lasts this long; the next authenticated request after that gets a new one.
    admin_session_seconds: float = Field(default=8 * 3600.0, gt=0, le=7 * 86_400)

    check_interval: float = Field(default=5.0, gt=0, le=300)
    heartbeat_stale_factor: float = Field(default=3.0, ge=1.0, le=100)
    rabbitmq_management_url: SecretHttpUrl | None = None
    dead_letter_peek_limit: int = Field(default=100, ge=1, le=1000)
    dashboard_refresh_seconds: float = Field(default=5.0, ge=0.5, le=300)
    # The job page links `<TRACE_UI_URL>/trace/<trace_id>` (Jaeger's form), as the api's GET /jobs/{id} does.
    trace_ui_url: str | None = None

    alert_error_rate: float = Field(default=0.05, ge=0, le=1)
    alert_failure_rate: float = Field(default=0.10, ge=0, le=1)
    alert_failure_window: Window = "1h"
    alert_latency_p95_seconds: float = Field(default=2.0, gt=0)
    alert_queue_depth: int = Field(default=50, ge=0)
    alert_consecutive_checks: int = Field(default=3, ge=1, le=100)
    alert_min_samples: int = Field(default=10, ge=1)
    alert_history_size: int = Field(default=200, ge=1, le=10_000)
    alert_webhook_url: SecretHttpUrl | None = None
    alert_webhook_timeout: float = Field(default=5.0, gt=0, le=60)

    sentry_free_spans: int = Field(default=100_000, ge=1)
    sentry_spans_per_request: float = Field(default=5.0, gt=0)
    sentry_requests_per_job: float = Field(default=5.0, gt=0)
    budget_refresh_interval: float = Field(default=60.0, gt=0, le=86_400)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip())
        return value
