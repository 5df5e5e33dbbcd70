"""Tracing, error reporting and instrumentation, set up once per process from the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from shared.redaction import mask_url
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

    provider: TracerProvider
    exporting: bool

    def shutdown(self) -> None:
        self.provider.shutdown()


def _resource(service: str, settings: BaseServiceSettings) -> Resource:
    return Resource.create(
        {
            "service.name": f"luster-{service}",
            "service.version": settings.app_version,
            "deployment.environment": settings.environment,
        }
    )


def _exporter(settings: BaseServiceSettings) -> SpanExporter | None:
    from shared.otlp import OTLPSpanExporter

    if settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint = f"{endpoint}/v1/traces"
        headers = settings.otlp_headers.get_secret_value() if settings.otlp_headers else None
        return OTLPSpanExporter(endpoint=endpoint, headers=parse_headers(headers))
    if settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint:
        return OTLPSpanExporter()  # the exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself
    return None


def _instrument(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]  # untyped library
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)


def tracer_provider(service: str, settings: BaseServiceSettings) -> tuple[TracerProvider, bool]:
    """Always trace (log lines and jobs carry trace ids); export only where an endpoint is configured.

    The SDK reads the sampler from `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` (default: every trace).
    """
    provider = TracerProvider(resource=_resource(service, settings))
    exporter = _exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
        endpoint = settings.otlp_endpoint or settings.otel_exporter_otlp_endpoint or ""
        log.info("telemetry.exporting", endpoint=mask_url(endpoint))
    return provider, exporter is not None


def setup_telemetry(
    service: str, settings: BaseServiceSettings, *, sentry_tags: Mapping[str, str] | None = None
) -> Telemetry:
    """The process's tracer provider, instrumentations and Sentry, once, at start-up."""
    provider, exporting = tracer_provider(service, settings)
    trace.set_tracer_provider(provider)
    _instrument(provider)
    if settings.sentry_dsn:
        import sentry_sdk

        from shared.sentry import setup_sentry

        setup_sentry(service, settings)
        for key, value in (sentry_tags or {}).items():
            sentry_sdk.set_tag(key, value)
    return Telemetry(provider, exporting=exporting)
