"""Tracing, error reporting and instrumentation, set up once per process from the settings.

Spans leave through the OTLP/HTTP exporter of the OpenTelemetry library, used as it is: its encoder,
request-size guard, retries and exporter metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from opentelemetry import trace
from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from shared.settings import BaseServiceSettings
from shared.telemetry.redaction import mask_url

log = structlog.get_logger()

# With ENVIRONMENT=production and no OTEL_TRACES_SAMPLER: one trace in ten, decided where a trace starts
# (the api, per job) and followed downstream, so a job's trace is whole or absent. Tracing's cost falls
# in proportion (README, "What tracing costs"); elsewhere every trace is kept.
PRODUCTION_SAMPLE_RATIO = 0.1
SAMPLERS: dict[str, Callable[[float], Sampler]] = {
    "always_on": lambda _: ALWAYS_ON,
    "always_off": lambda _: ALWAYS_OFF,
    "traceidratio": TraceIdRatioBased,
    "parentbased_always_on": lambda _: ParentBased(ALWAYS_ON),
    "parentbased_always_off": lambda _: ParentBased(ALWAYS_OFF),
    "parentbased_traceidratio": lambda ratio: ParentBased(TraceIdRatioBased(ratio)),
}


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


def _sampler(settings: BaseServiceSettings) -> Sampler:
    """`OTEL_TRACES_SAMPLER`/`_ARG` as the SDK would read them; unset, every trace, but in production
    `parentbased_traceidratio` at `OTEL_TRACES_SAMPLER_ARG`, or else at PRODUCTION_SAMPLE_RATIO."""
    production_default = settings.environment == "production" and settings.otel_traces_sampler is None
    name = settings.otel_traces_sampler or (
        "parentbased_traceidratio" if production_default else "parentbased_always_on"
    )
    ratio = settings.otel_traces_sampler_arg
    if ratio is None:
        ratio = PRODUCTION_SAMPLE_RATIO if production_default else 1.0  # the SDK's 1.0 for a ratio without one
    return SAMPLERS[name](ratio)


def _exporter(settings: BaseServiceSettings) -> SpanExporter | None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

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

    Sampled as `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG` say, with production's default (`_sampler`).
    """
    provider = TracerProvider(resource=_resource(service, settings), sampler=_sampler(settings))
    exporter = _exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
        endpoint = settings.otlp_endpoint or settings.otel_exporter_otlp_endpoint or ""
        log.info("telemetry.exporting", endpoint=mask_url(endpoint))
    return provider, exporter is not None


def sdk_disabled() -> bool:
    """The SDK's own off switch (`OTEL_SDK_DISABLED=true`): its tracers then make no spans at all."""
    return os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def setup_telemetry(
    service: str, settings: BaseServiceSettings, *, sentry_tags: Mapping[str, str] | None = None
) -> Telemetry:
    """The process's tracer provider, instrumentations and Sentry, once, at start-up."""
    provider, exporting = tracer_provider(service, settings)
    trace.set_tracer_provider(provider)
    if not sdk_disabled():  # with tracing off, wrapping every query and client call would be cost alone
        _instrument(provider)
    if settings.sentry_dsn:
        import sentry_sdk

        from shared.telemetry.sentry import setup_sentry

        setup_sentry(service, settings)
        for key, value in (sentry_tags or {}).items():
            sentry_sdk.set_tag(key, value)
    return Telemetry(provider, exporting=exporting)
