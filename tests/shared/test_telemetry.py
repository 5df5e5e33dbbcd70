"""The tracer provider each service builds from its settings: what it exports, where, and how much."""

from __future__ import annotations

import asyncio

import pytest

from shared.settings import BaseServiceSettings
from shared.telemetry import parse_headers, tracer_provider
from tests.conftest import SettingsFactory
from tests.system.receivers import otlp_receiver


def test_otlp_headers_in_the_guides_form() -> None:
    assert parse_headers("Authorization=Bearer abc=def, X-Scope-OrgID = luster ,broken,=x") == {
        "Authorization": "Bearer abc=def",
        "X-Scope-OrgID": "luster",
    }


async def test_spans_go_to_otlp_endpoint_with_otlp_headers(settings_for: SettingsFactory) -> None:
    async with otlp_receiver() as receiver:
        settings = settings_for(
            BaseServiceSettings,
            otlp_endpoint=f"{receiver.url}/",  # the guide's form: the base address, path added here
            otlp_headers="Authorization=Bearer t0ken",
            app_version="9.9.9",
        )
        provider, exporting = tracer_provider("api", settings)
        with provider.get_tracer("luster").start_as_current_span("POST /jobs"):
            pass
        await asyncio.to_thread(provider.shutdown)  # flushes the batch to the receiver on this loop
    assert exporting
    [span] = receiver.spans
    assert (span.service, span.name) == ("luster-api", "POST /jobs")
    assert receiver.authorization == ["Bearer t0ken"]


def test_without_an_endpoint_spans_are_made_but_not_exported(settings_for: SettingsFactory) -> None:
    provider, exporting = tracer_provider("worker", settings_for(BaseServiceSettings))
    with provider.get_tracer("luster").start_as_current_span("engine enhance") as span:
        assert span.get_span_context().trace_flags.sampled  # log lines still carry its trace id
    assert not exporting


@pytest.mark.parametrize(("ratio", "sampled"), [("0", False), ("1", True)])
def test_the_sampler_comes_from_the_standard_variables(
    settings_for: SettingsFactory, monkeypatch: pytest.MonkeyPatch, ratio: str, sampled: bool
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)
    provider, _ = tracer_provider("api", settings_for(BaseServiceSettings))
    with provider.get_tracer("luster").start_as_current_span("POST /jobs") as span:
        assert span.get_span_context().trace_flags.sampled is sampled
