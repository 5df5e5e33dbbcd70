"""Tracing and error reporting, set up once per process, each only when configured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from shared.settings import BaseServiceSettings

log = structlog.get_logger()


def parse_headers(raw: str | None) -> dict[str, str]:
    """`OTLP_HEADERS` in the guide's form: `Authorization=Bearer <token>,X-Other=value`."""
    headers: dict[str, str] = {}
    for item in (raw or "").split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    return headers


@dataclass
class Telemetry:
    """What `setup_telemetry` started, so `shutdown` can flush it."""

    provider: TracerProvider | None = None

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def _resource(service: str, settings: BaseServiceSettings) -> Resource:
    return Resource.create(
        {
            "service.name": f"luster-{service}",
            "service.version": settings.app_version,
            "deployment.environment": settings.environment,
        }
    )


def _tracer_provider(service: str, settings: BaseServiceSettings) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=_resource(service, settings))
    endpoint = (settings.otlp_endpoint or "").rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint = f"{endpoint}/v1/traces"
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=parse_headers(settings.otlp_headers))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup_telemetry(service: str, settings: BaseServiceSettings, *, extra_tags: Mapping[str, str] = {}) -> Telemetry:
    telemetry = Telemetry()
    if settings.otlp_endpoint:
        telemetry.provider = _tracer_provider(service, settings)
        trace.set_tracer_provider(telemetry.provider)
        log.info("telemetry.tracing", endpoint=settings.otlp_endpoint)
    if settings.sentry_dsn:
        import sentry_sdk

        sentry_sdk.init(
            dsn=settings.sentry_dsn,
            environment=settings.environment,
            release=settings.app_version,
            traces_sample_rate=settings.sentry_traces_sample_rate,
            send_default_pii=False,
        )
        for key, value in extra_tags.items():
            sentry_sdk.set_tag(key, value)
    return telemetry
