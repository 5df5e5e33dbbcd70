"""The tracer provider each service builds from its settings: what it exports, where, and how much."""

from __future__ import annotations

import asyncio
import io
import uuid

import aiohttp
import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from PIL import Image
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from shared import apikeys, tracing
from shared.settings import BaseServiceSettings, HttpServiceSettings
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


# A client's own trace context, as a browser SDK or another company's service would send it.
CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"


@pytest.mark.parametrize(
    ("environment", "setting", "trusted"),
    [("development", None, True), ("production", None, False), ("production", True, True), ("test", False, False)],
)
def test_incoming_trace_is_trusted_by_default_except_in_production(
    environment: str, setting: bool | None, trusted: bool
) -> None:
    settings = HttpServiceSettings(environment=environment, trust_incoming_trace=setting)
    assert settings.trusts_incoming_trace is trusted


@pytest.fixture
def server_spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """The spans the api makes, in memory: its tracer swapped for one of this test's own provider
    (the process-wide provider can be set only once, and another test module sets it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("luster"))
    return exporter


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 160, 210)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.integration
@pytest.mark.parametrize("trust", [True, False], ids=["trusted", "untrusted"])
async def test_a_clients_traceparent_continues_only_when_trusted(
    pool: asyncpg.Pool,
    settings_for: SettingsFactory,
    aiohttp_client: AiohttpClient,
    server_spans: InMemorySpanExporter,
    trust: bool,
) -> None:
    api = await aiohttp_client(create_api(settings_for(ApiSettings, trust_incoming_trace=trust)))
    _, token = await apikeys.create_key(pool, owner=f"trace-{uuid.uuid4().hex[:8]}", name="trace", plan="premium")
    form = aiohttp.FormData()
    form.add_field("file", _photo(), filename="house.jpg", content_type="image/jpeg")
    form.add_field("prompt", "Test enhancement")
    form.add_field("tier", "free")
    headers = {"traceparent": TRACEPARENT, "Authorization": f"Bearer {token}"}
    response = await api.post("/jobs", data=form, headers=headers)
    assert response.status == 202, await response.text()
    job = (await response.json())["job"]
    [server] = [span for span in server_spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert job["trace_id"] == format(server.context.trace_id, "032x")  # the job's trace is the request's
    stored = await pool.fetchval("SELECT trace_id FROM jobs WHERE id = $1", uuid.UUID(job["id"]))
    assert stored == job["trace_id"]
    if trust:
        assert job["trace_id"] == CLIENT_TRACE_ID
        assert server.parent is not None and format(server.parent.span_id, "016x") == CLIENT_SPAN_ID
    else:
        assert job["trace_id"] != CLIENT_TRACE_ID  # the server's own trace, not one the client chose
        assert server.parent is None
        # The client's context is kept as a link, so its trace still leads here.
        assert [
            (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) for link in server.links
        ] == [(CLIENT_TRACE_ID, CLIENT_SPAN_ID)]
