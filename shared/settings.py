"""Typed settings from the environment: one base every service extends, validated once at start-up."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import AnyUrl, Field, UrlConstraints, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PostgresUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["postgres", "postgresql"], host_required=True)]
AmqpUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["amqp", "amqps"], host_required=True)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class BaseServiceSettings(BaseSettings):
    """What every Luster service reads: where the dependencies are and how to report."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    database_url: PostgresUrl = Field(default=AnyUrl("postgresql://postgres@127.0.0.1:5432/luster"))
    amqp_url: AmqpUrl = Field(default=AnyUrl("amqp://guest:guest@127.0.0.1:5672/"))
    # Every exchange and queue name starts with this, so tests and stacks can share one broker.
    broker_prefix: str = Field(default="luster", pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    environment: str = "development"
    app_version: str = "0.1.0"
    log_level: LogLevel = "INFO"
    sentry_dsn: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    otlp_endpoint: str | None = None
    otlp_headers: str | None = None
    # The standard OpenTelemetry variables work too; the exporter reads them (and their headers) itself.
    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    db_pool_min: int = Field(default=1, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    uploads_dir: Path = Path("var/uploads")
    outputs_dir: Path = Path("var/outputs")
    # How long a service start waits for PostgreSQL and RabbitMQ to answer before giving up.
    startup_timeout: float = Field(default=60.0, gt=0, le=3600)


class HttpServiceSettings(BaseServiceSettings):
    """A service that serves HTTP: the api (port 8000) and the monitor (8001) set their own default port."""

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)


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
