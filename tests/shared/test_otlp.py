"""The wire encoder decodes to exactly what the official OTLP encoder builds, span shape by span shape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import structlog.testing
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as library_encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from shared.otlp import OTLPSpanExporter, encode_spans
from tests.system.receivers import otlp_receiver

REMOTE_PARENT = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=opaque,luster=t61rcWkgMzE",
}

ATTRIBUTES: dict[str, Any] = {
    "text": "listing photo « salon » 🌅",
    "empty": "",
    "long": "SELECT " + "x" * 200,  # a length that takes two varint bytes
    "very.long": "y" * 20_000,  # and three
    "true": True,
    "false": False,
    "zero": 0,
    "small": 7,
    "negative": -42,
    "int64.min": -(2**63),
    "int64.max": 2**63 - 1,
    "float": 3.25,
    "float.zero": 0.0,
    "float.negative": -1e-300,
    "strings": ("a", "b", ""),
    "ints": (1, -1, 2**40),
    "floats": (0.5, -0.0),
    "bools": (True, False),
    "empty.list": (),
}


def _provider(resource: Resource, *, limits: SpanLimits | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _assert_same(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert ours == library_encode_spans(spans)


def _sdk_spans() -> Iterator[ReadableSpan]:
    """Every shape Luster's services produce, and the ones the SDK can, through the real SDK."""
    resource = Resource.create({"service.name": "luster-api", "service.version": "1.2.3"}, schema_url="https://s/1")
    provider, exporter = _provider(resource)
    tracer = provider.get_tracer("luster", "0.1.0", schema_url="https://s/2", attributes={"scope.kind": "app"})
    other = provider.get_tracer("opentelemetry.instrumentation.asyncpg")
    remote = propagate.extract(REMOTE_PARENT)
    with tracer.start_as_current_span("POST /jobs", context=remote, kind=SpanKind.SERVER, attributes=ATTRIBUTES):
        with other.start_as_current_span("WITH", kind=SpanKind.CLIENT) as query:
            query.set_status(Status(StatusCode.ERROR, "deadlock detected"))
        with tracer.start_as_current_span("publish job.queued.free", kind=SpanKind.PRODUCER) as publish:
            publish.add_event("returned", {"reply.code": 312, "reply.text": "NO_ROUTE"})
            publish.add_event("bare")
        with tracer.start_as_current_span("ok") as ok:
            ok.set_status(Status(StatusCode.OK))
    links = [Link(SpanContext(0x1234, 0x5678, is_remote=True), {"link.kind": "relay"}), Link(SpanContext(1, 2, False))]
    with tracer.start_as_current_span("process jobs.free", kind=SpanKind.CONSUMER, links=links):
        pass
    try:
        with tracer.start_as_current_span("engine.enhance"):
            raise RuntimeError("engine blew up")
    except RuntimeError:
        pass
    yield from exporter.get_finished_spans()


def test_spans_from_the_sdk_decode_to_what_the_library_encodes() -> None:
    spans = list(_sdk_spans())
    assert len(spans) == 6
    _assert_same(spans)


def test_each_span_alone_decodes_to_what_the_library_encodes() -> None:
    for span in _sdk_spans():
        _assert_same([span])


def test_dropped_attributes_events_and_links_are_counted() -> None:
    provider, exporter = _provider(
        Resource.create({"service.name": "luster-worker"}),
        limits=SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1),
    )
    tracer = provider.get_tracer("luster")
    links = [Link(SpanContext(3, 4, False)), Link(SpanContext(5, 6, False))]
    with tracer.start_as_current_span("crowded", attributes={"a": 1, "b": 2, "c": 3}, links=links) as span:
        span.add_event("first", {"x": 1, "y": 2})
        span.add_event("second")
    [crowded] = exporter.get_finished_spans()
    assert (crowded.dropped_attributes, crowded.dropped_events, crowded.dropped_links) == (1, 1, 1)
    _assert_same([crowded])


def test_spans_of_two_resources_keep_their_own_resource() -> None:
    spans: list[ReadableSpan] = []
    for service in ("luster-api", "luster-monitor"):
        provider, exporter = _provider(Resource.create({"service.name": service}))
        with provider.get_tracer("luster").start_as_current_span("GET /health"):
            pass
        spans += exporter.get_finished_spans()
    request = ExportTraceServiceRequest.FromString(encode_spans(spans))
    services = [
        next(a.value.string_value for a in r.resource.attributes if a.key == "service.name")
        for r in request.resource_spans
    ]
    assert services == ["luster-api", "luster-monitor"]
    _assert_same(spans)


def test_equal_values_of_different_types_keep_their_types() -> None:
    """True == 1 == 1.0 in Python: the encoder's cache of common attributes must not mix them up."""
    provider, exporter = _provider(Resource.create({}))
    for value in (True, 1, 1.0, "1"):
        with provider.get_tracer("luster").start_as_current_span("typed", attributes={"luster.value": value}):
            pass
    spans = list(exporter.get_finished_spans())
    request = ExportTraceServiceRequest.FromString(encode_spans(spans))
    kinds = [span.attributes[0].value.WhichOneof("value") for span in request.resource_spans[0].scope_spans[0].spans]
    assert kinds == ["bool_value", "int_value", "double_value", "string_value"]
    _assert_same(spans)


def _handmade(attributes: dict[str, Any]) -> ReadableSpan:
    """A span the SDK would have cleaned: only an exporter fed by other code meets such values."""
    context = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(1), trace_state=TraceState())
    return ReadableSpan(
        name="handmade",
        context=context,
        attributes=attributes,
        events=(Event("e", {"nested": {"k": "v", "n": None}}, timestamp=5),),
        resource=Resource.create({}),
        instrumentation_scope=InstrumentationScope("hand"),
        start_time=1,
        end_time=2,
    )


def test_values_outside_the_sdks_types_encode_as_the_library_does() -> None:
    _assert_same([_handmade({"map": {"a": 1, "b": ("x", None)}, "bytes": b"\x00\xff", "none": None})])


def test_an_attribute_that_cannot_be_encoded_is_dropped_and_the_span_kept() -> None:
    span = _handmade({"kept": "yes", "object": object(), "huge": 2**64})
    with structlog.testing.capture_logs() as logs:
        request = ExportTraceServiceRequest.FromString(encode_spans([span]))
    [exported] = request.resource_spans[0].scope_spans[0].spans
    assert [a.key for a in exported.attributes] == ["kept"]
    assert [(entry["event"], entry["key"]) for entry in logs] == [
        ("otlp.attribute_dropped", "object"),
        ("otlp.attribute_dropped", "huge"),
    ]


async def test_the_exporter_posts_the_encoded_spans_with_the_configured_headers() -> None:
    spans = list(_sdk_spans())
    async with otlp_receiver() as receiver:
        exporter = OTLPSpanExporter(
            endpoint=f"{receiver.url}/v1/traces",
            headers={"Authorization": "Bearer t0ken"},
            compression=Compression.Gzip,
        )
        result = await asyncio.to_thread(exporter.export, spans)
        exporter.shutdown()  # type: ignore[no-untyped-call]  # untyped in the library
        after_shutdown = await asyncio.to_thread(exporter.export, spans)
    assert result is SpanExportResult.SUCCESS
    assert after_shutdown is SpanExportResult.FAILURE
    assert receiver.authorization == ["Bearer t0ken"]
    assert sorted(span.name for span in receiver.spans) == sorted(span.name for span in spans)


async def test_a_collector_that_refuses_the_batch_fails_the_export() -> None:
    async with otlp_receiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=f"{receiver.url}/v1/nowhere", timeout=2)
        result = await asyncio.to_thread(exporter.export, list(_sdk_spans()))
    assert result is SpanExportResult.FAILURE
