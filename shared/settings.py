"""Typed settings from the environment: one base every service extends, validated once at start-up."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AnyUrl,
    BeforeValidator,
    Field,
    Secret,
    SecretStr,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import MultiHostUrl
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.telemetry.redaction import mask_url

# Several hosts (`postgresql://user@primary:5432,standby:5432/luster?target_session_attrs=read-write`) name a
# primary and its standbys: asyncpg connects to the first that answers as the attributes ask.
PostgresUrl = Annotated[MultiHostUrl, UrlConstraints(allowed_schemes=["postgres", "postgresql"], host_required=True)]
AmqpUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["amqp", "amqps"], host_required=True)]
_AMQP_URL: TypeAdapter[AnyUrl] = TypeAdapter(AmqpUrl)


def _broker_addresses(value: str) -> str:
    """One broker URL, or the nodes of a cluster as URLs separated by commas, each checked on its own."""
    addresses = [part.strip() for part in value.split(",")]
    if not all(addresses):
        raise ValueError("an empty address between commas")
    checked = []
    for number, address in enumerate(addresses, start=1):
        try:
            checked.append(str(_AMQP_URL.validate_python(address)))
        except ValidationError as error:  # its own message: pydantic's would repeat the input, password and all
            which = f"address {number}: " if len(addresses) > 1 else ""
            raise ValueError(which + error.errors()[0]["msg"]) from None
    return ",".join(checked)


# AMQP_URL: the services connect to the first node that answers and move on to the next when it goes away.
AmqpUrls = Annotated[str, AfterValidator(_broker_addresses)]
HttpUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["http", "https"], host_required=True)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# The OpenTelemetry SDK's own samplers, by their standard names (which it takes in any case).
TracesSampler = Annotated[
    Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ],
    BeforeValidator(lambda name: name.lower() if isinstance(name, str) else name),
]
MIB = 1024 * 1024


class _MaskedUrl:
    """Shown (repr, str, JSON) with the password masked; `get_secret_value()` gives the URL itself."""

    def _display(self) -> str:
        return mask_url(str(self.get_secret_value()))  # type: ignore[attr-defined]  # mixed into a Secret


# URLs that carry credentials (a password, a webhook's token): never printed whole by accident.
class SecretPostgresUrl(_MaskedUrl, Secret[PostgresUrl]):
    """DATABASE_URL."""


class SecretAmqpUrl(_MaskedUrl, Secret[AmqpUrls]):
    """AMQP_URL: one node's URL, or several nodes' separated by commas."""

    def addresses(self) -> list[str]:
        return self.get_secret_value().split(",")


class SecretHttpUrl(_MaskedUrl, Secret[HttpUrl]):
    """An HTTP URL with credentials in it (a management API's user, a webhook's token)."""


class BaseServiceSettings(BaseSettings):
    """What every Luster service reads: where the dependencies are and how to report."""

    # An empty variable (as .env.example and compose leave them) means "not set", not an empty value.
    # A `.env` in the working directory (a developer's copy of .env.example) fills in what the
    # environment does not set; the image ships none (.dockerignore).
    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True, env_file=".env"
    )

    database_url: SecretPostgresUrl = Field(
        default="postgresql://postgres@127.0.0.1:5432/luster", validate_default=True
    )
    amqp_url: SecretAmqpUrl = Field(default="amqp://guest:guest@127.0.0.1:5672/", validate_default=True)
    # Every exchange and queue name starts with this, so tests and stacks can share one broker.
    broker_prefix: str = Field(default="luster", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    environment: str = "development"
    app_version: str = "0.1.0"
    log_level: LogLevel = "INFO"
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    otlp_endpoint: str | None = None
    otlp_headers: SecretStr | None = None
    # The standard OpenTelemetry variables work too; the exporter reads them (and their headers) itself.
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    # Which traces are kept: the standard variables, read here (not by the SDK) so production has a default.
    otel_traces_sampler: TracesSampler | None = None
    otel_traces_sampler_arg: float | None = Field(default=None, ge=0.0, le=1.0)
    db_pool_min: int = Field(default=1, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    # Whose assets and jobs the rows from before owners existed become (read by `python -m shared.migrate`).
    default_owner: str = Field(default="default", min_length=1, max_length=200)
    # How long a service start waits for PostgreSQL and RabbitMQ to answer before giving up.
    startup_timeout: float = Field(default=60.0, gt=0, le=3600)


class HttpServiceSettings(BaseServiceSettings):
    """A service that serves HTTP: the api (port 8000) and the monitor (8001) set their own default port."""

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    # Whether a client's `traceparent` may continue its trace here; a stranger's would choose our trace
    # ids (and their sampling). Unset: trusted, except with ENVIRONMENT=production.
    trust_incoming_trace: bool | None = None

    @property
    def trusts_incoming_trace(self) -> bool:
        return self.environment != "production" if self.trust_incoming_trace is None else self.trust_incoming_trace


class FairShareSettings(BaseServiceSettings):
    """A service that puts jobs into the work queues or takes them out (the api and the workers)."""

    # At most this many of one owner's jobs wait in the work queues at a time; the rest wait, held, in
    # PostgreSQL (shared/fairshare.py), so one backlog does not stand ahead of everyone's first photo.
    # 0 turns holding off. The api and the workers must agree on it.
    fair_share_queued: int = Field(default=20, ge=0, le=1_000_000)


class WebhookSettings(BaseServiceSettings):
    """A service that accepts webhook targets or calls them (the api and the workers)."""

    # Receivers on private, loopback or link-local addresses are refused (no server-side request
    # forgery) unless this says they live there: local development, or a private network on purpose.
    webhook_allow_private_targets: bool = False


class MetricsSettings(BaseServiceSettings):
    """A service with its own Prometheus `/metrics` (the api and the workers)."""

    # The bearer token a scraper sends: `Authorization: Bearer <METRICS_TOKEN>`. Unset, the api's /metrics
    # is open outside production and absent (404) in production; the workers' port is private, open unless set.
    metrics_token: SecretStr | None = None


class SpendSettings(BaseServiceSettings):
    """A service that spends on the paid engine or watches it (the workers and the monitor)."""

    # At most this many US dollars a UTC day on the paid engine, across every worker (shared/spend.py);
    # unset: no cap. The monitor alerts at 80 % of it.
    openai_daily_budget_usd: Decimal | None = Field(default=None, gt=0, le=1_000_000, decimal_places=2)


class StorageSettings(BaseServiceSettings):
    """A service that reads or writes photos (the api and the workers): where they live."""

    # Where originals and outputs live: local directories (one machine) or an S3-compatible bucket.
    storage: Literal["local", "s3"] = "local"
    uploads_dir: Path = Path("var/uploads")
    outputs_dir: Path = Path("var/outputs")
    # A local store in production only works when every service runs on one machine: say so on purpose.
    allow_local_storage: bool = False
    s3_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    s3_endpoint_url: HttpUrl | None = None  # R2, MinIO, Railway buckets; empty for AWS itself
    # Presigned URLs name the host they were signed for: the one clients reach, where it differs.
    s3_public_endpoint_url: HttpUrl | None = None
    s3_region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    s3_prefix: str = Field(default="", pattern=r"^([A-Za-z0-9._-]+/)*$")
    # Empty means the SDK's own chain (an instance role, ~/.aws); set both, or neither.
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    # Above this size an upload goes to the store in parts of this size (S3's minimum part is 5 MiB).
    s3_multipart_bytes: int = Field(default=8 * MIB, ge=5 * MIB, le=512 * MIB)
    # How long a presigned download or upload stays valid.
    presigned_url_expires_s: int = Field(default=300, ge=10, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _storage_can_work(self) -> StorageSettings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("S3_BUCKET is required when STORAGE=s3")
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together: set both or neither")
        if self.storage == "local" and self.environment == "production" and not self.allow_local_storage:
            raise ValueError(
                "STORAGE=local in production: services on separate machines share no disk; "
                "set STORAGE=s3, or ALLOW_LOCAL_STORAGE=true for a single-machine deploy"
            )
        return self


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build the settings or stop the process with one line naming the bad variable."""
    try:
        return cls()
    except ValidationError as error:
        first = error.errors()[0]
        where = f"{str(first['loc'][0]).upper()}: " if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        sys.exit(f"luster: invalid configuration: {where}{message}")
