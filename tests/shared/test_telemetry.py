"""The tracer provider each service builds from its settings: what it exports, where, and how much."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased
from opentelemetry.trace import SpanKind
from PIL import Image
from pydantic import ValidationError
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app as create_api
from services.api.settings import ApiSettings
from shared import apikeys
from shared.settings import BaseServiceSettings, HttpServiceSettings
from shared.telemetry import tracing
from shared.telemetry.setup import PRODUCTION_SAMPLE_RATIO, parse_headers, tracer_provider
from tests.conftest import SettingsFactory
from tests.system.processes import ROOT
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


def _sampled_share(provider: TracerProvider, *, traces: int = 1000) -> float:
    """The share of new traces the provider keeps, over trace ids spread evenly across the id space.

    The ratio samplers keep a trace id whose low 64 bits are below ratio × 2**64: one id in the middle
    of each of `traces` equal slices makes the count exact, where random ids would only come near it.
    """
    step = 2**64 // traces
    ids = (i * step + step // 2 for i in range(traces))
    decisions = [provider.sampler.should_sample(None, trace_id, "POST /jobs").decision for trace_id in ids]
    kept = decisions.count(Decision.RECORD_AND_SAMPLE)
    return kept / traces


@pytest.fixture
def unset_sampler(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither sampler variable set, whatever the shell running the tests exports."""
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)
    return monkeypatch


@pytest.mark.usefixtures("unset_sampler")
def test_production_keeps_one_trace_in_ten_when_nothing_is_set() -> None:
    provider, _ = tracer_provider("api", BaseServiceSettings(environment="production"))
    assert _sampled_share(provider) == PRODUCTION_SAMPLE_RATIO == 0.1
    assert provider.sampler.get_description().startswith("ParentBased{root:TraceIdRatioBased{0.1}")


@pytest.mark.usefixtures("unset_sampler")
def test_production_follows_the_parents_decision() -> None:
    """The worker and the monitor keep or drop a job's spans as the api decided: its trace is whole or absent."""
    provider, _ = tracer_provider("worker", BaseServiceSettings(environment="production"))
    tracer = provider.get_tracer("luster")
    # Trace ids the ratio alone would decide the other way: the parent's flag is what counts.
    for trace_id, flags, sampled in (("f" * 32, "01", True), ("0" * 31 + "1", "00", False)):
        parent = propagate.extract({"traceparent": f"00-{trace_id}-{'cd' * 8}-{flags}"})
        with tracer.start_as_current_span("process jobs.free", context=parent) as span:
            assert span.get_span_context().trace_flags.sampled is sampled


@pytest.mark.usefixtures("unset_sampler")
def test_development_keeps_every_trace() -> None:
    provider, _ = tracer_provider("api", BaseServiceSettings(environment="development"))
    assert _sampled_share(provider) == 1.0


@pytest.mark.parametrize(
    ("variables", "share"),
    [
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, 1.0),
        ({"OTEL_TRACES_SAMPLER": "always_on"}, 1.0),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, 0.25),
        ({"OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, 0.25),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}, 1.0),  # no ratio given: the SDK's 1.0
        ({"OTEL_TRACES_SAMPLER_ARG": "0.5"}, 0.5),  # the ratio alone changes the default's ratio
    ],
)
def test_in_production_the_standard_variables_win(
    unset_sampler: pytest.MonkeyPatch, variables: dict[str, str], share: float
) -> None:
    for name, value in variables.items():
        unset_sampler.setenv(name, value)
    provider, _ = tracer_provider("api", BaseServiceSettings(environment="production"))
    assert _sampled_share(provider) == share


@pytest.mark.usefixtures("unset_sampler")
def test_the_sampler_is_taken_from_the_settings_not_only_the_process_environment() -> None:
    """A `.env` file or settings built in code decide too: the SDK alone would see only os.environ."""
    settings = BaseServiceSettings(environment="production", otel_traces_sampler="always_off")
    provider, _ = tracer_provider("api", settings)
    assert _sampled_share(provider) == 0.0


@pytest.mark.parametrize(("name", "value"), [("OTEL_TRACES_SAMPLER_ARG", "10"), ("OTEL_TRACES_SAMPLER", "sometimes")])
def test_a_sampler_setting_the_sdk_would_ignore_stops_start_up(
    unset_sampler: pytest.MonkeyPatch, name: str, value: str
) -> None:
    unset_sampler.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        BaseServiceSettings(environment="production")


# A client's own trace context, as a browser SDK or another company's service would send it.
CLIENT_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN_ID = "b7ad6b7169203331"


def _from_client(*, kept: bool) -> dict[str, str]:
    return {"traceparent": f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-{'01' if kept else '00'}"}


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
    headers = {**_from_client(kept=True), "Authorization": f"Bearer {token}"}
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


@pytest.mark.parametrize(("disabled", "instrumented"), [("true", False), ("false", True), ("", True)])
def test_with_the_sdk_off_no_query_or_client_call_is_wrapped(
    service_env: dict[str, str], disabled: str, instrumented: bool
) -> None:
    """A process of its own: the instrumentations patch asyncpg and aiohttp process-wide, once."""
    program = (
        "from shared.settings import BaseServiceSettings\n"
        "from shared.telemetry.setup import setup_telemetry\n"
        "from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor\n"
        "setup_telemetry('test', BaseServiceSettings())\n"
        "print(AsyncPGInstrumentor().is_instrumented_by_opentelemetry)\n"
    )
    env = {**os.environ, **service_env, "OTEL_SDK_DISABLED": disabled, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == str(instrumented)


@pytest.mark.parametrize(("disabled", "traced"), [("true", False), ("TRUE", False), ("false", True), ("", True)])
def test_with_the_sdk_off_requests_go_around_the_tracing_middleware(
    monkeypatch: pytest.MonkeyPatch, disabled: str, traced: bool
) -> None:
    """Its spans would be the API's no-op ones, made for every request for nothing."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", disabled)
    assert [getattr(middleware, "__name__", None) for middleware in tracing.server_middlewares()] == (
        ["tracing"] if traced else []
    )


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "dropped"])
async def test_a_request_runs_with_the_libraries_instrumented_only_in_a_kept_trace(
    monkeypatch: pytest.MonkeyPatch, aiohttp_client: AiohttpClient, kept: bool
) -> None:
    """A dropped trace's query spans would be made only to be thrown away: most of what it cost."""
    provider = TracerProvider(sampler=ALWAYS_ON if kept else ALWAYS_OFF)
    monkeypatch.setattr(tracing, "tracer", provider.get_tracer("luster"))
    instrumented: list[bool] = []

    async def listings(_: web.Request) -> web.Response:
        instrumented.append(is_instrumentation_enabled())
        return web.Response()

    app = web.Application(middlewares=[tracing.server_middleware()])
    app.router.add_get("/listings", listings)
    client = await aiohttp_client(app)
    assert (await client.get("/listings")).status == 200
    assert instrumented == [kept]


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "dropped"])
def test_a_message_is_handled_with_the_libraries_instrumented_only_in_a_kept_trace(
    monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    monkeypatch.setattr(tracing, "tracer", TracerProvider(sampler=ParentBased(ALWAYS_ON)).get_tracer("luster"))
    with tracing.consume_span(
        _from_client(kept=kept), queue="luster.work.free", routing_key="job.queued.free", message_id="m"
    ):
        assert is_instrumentation_enabled() is kept
    assert is_instrumentation_enabled()  # and only while the message is handled


class _CountingTracer:
    """The luster tracer, counting the spans asked of it (a span the sampler drops reaches no processor)."""

    def __init__(self) -> None:
        self._tracer = TracerProvider(sampler=ParentBased(ALWAYS_ON)).get_tracer("luster")
        self.spans = 0

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        self.spans += 1
        return self._tracer.start_as_current_span(*args, **kwargs)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> _CountingTracer:
    counting = _CountingTracer()
    monkeypatch.setattr(tracing, "tracer", counting)
    return counting


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "dropped"])
def test_a_message_of_a_dropped_trace_is_published_in_it_without_a_span_of_its_own(
    counting: _CountingTracer, kept: bool
) -> None:
    with tracing.publish_span(
        _from_client(kept=kept), exchange="luster.events", routing_key="job.queued", message_id="m"
    ) as sent:
        pass

    assert counting.spans == (1 if kept else 0)
    trace_id, span_id, flags = sent["traceparent"].split("-")[1:]
    assert trace_id == CLIENT_TRACE_ID  # the consumer continues the same trace either way
    assert (span_id != CLIENT_SPAN_ID, flags) == ((True, "01") if kept else (False, "00"))


def test_a_message_sent_from_within_a_dropped_trace_carries_that_trace(counting: _CountingTracer) -> None:
    dropped = TracerProvider(sampler=ALWAYS_OFF).get_tracer("luster")

    with (
        dropped.start_as_current_span("POST /jobs") as request,
        tracing.publish_span({}, exchange="luster.events", routing_key="job.queued", message_id="m") as sent,
    ):
        pass

    assert counting.spans == 0
    assert sent["traceparent"].split("-")[1] == format(request.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "dropped"])
def test_a_message_of_a_dropped_trace_is_handled_in_it_without_a_span_of_its_own(
    counting: _CountingTracer, kept: bool
) -> None:
    with tracing.consume_span(
        _from_client(kept=kept), queue="luster.work.free", routing_key="job.queued.free", message_id="m"
    ):
        handling = trace.get_current_span().get_span_context()  # what its log lines and messages carry

    assert counting.spans == (1 if kept else 0)
    assert format(handling.trace_id, "032x") == CLIENT_TRACE_ID
    assert (format(handling.span_id, "016x") == CLIENT_SPAN_ID) is not kept
