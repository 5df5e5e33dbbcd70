"""OTLP/HTTP span export: the library's exporter, with spans written straight to protobuf wire format.

The SDK's encoder builds a protobuf object for every span, attribute and value: about 40 µs a span
here, spent on the exporter thread while holding the GIL the event loop needs. Writing the wire
format directly takes under half the instructions (bench/tracing_cpu.py counts them) and decodes to
the same message (tests/shared/test_otlp.py compares the two over every field).
Field numbers: opentelemetry-proto, collector/trace/v1 and trace/v1, common/v1, resource/v1.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as LibraryExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status

log = structlog.get_logger()

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_INT64 = range(-(2**63), 2**63)
_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
# SpanFlags: the parent's remoteness is known, and whether it is remote.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [_varint(n) for n in range(128)]


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes or a nested message."""
    size = len(payload)
    return tag + (_SMALL[size] if size < 128 else _varint(size)) + payload


def _text(tag: bytes, value: str) -> bytes:
    return _field(tag, value.encode())


def _any_value(value: Any) -> bytes:
    """AnyValue, in the order the library tests types (bool before int, str and bytes before Sequence)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(b"\x0a", value)
    if isinstance(value, int):
        if value not in _INT64:
            raise ValueError(f"{value} does not fit an int64")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(item)) for item in value))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"invalid type {type(value).__name__} of value {value!r}")


def _key_value(key: str, value: Any) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any_value(value))


# Most attributes repeat from span to span (db.system, the route, the statement): each such pair is
# encoded once. Only short scalars are kept, so the cache stays within a megabyte or two.
_cached_key_value = functools.lru_cache(maxsize=1024, typed=True)(_key_value)
_SHORT = 1024


def _encode_pair(key: str, value: Any) -> bytes:
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= _SHORT):
        return _cached_key_value(key, value)
    return _key_value(key, value)


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    parts = []
    for key, value in attributes.items():
        try:
            parts.append(_field(tag, _encode_pair(key, value)))
        except (TypeError, ValueError) as error:  # as the library does: drop the attribute, keep the span
            log.warning("otlp.attribute_dropped", key=key, error=repr(error))
    return b"".join(parts)


def _count(tag: bytes, value: int) -> bytes:
    return tag + _varint(value) if value else b""


def _span_flags(parent: SpanContext | None) -> bytes:
    return _fixed32(_HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0))


def _ids(context: SpanContext) -> bytes:
    """The trace and span ids, fields 1 and 2 of both a Span and a Link."""
    return b"\x0a\x10" + context.trace_id.to_bytes(16, "big") + b"\x12\x08" + context.span_id.to_bytes(8, "big")


def _events(span: ReadableSpan) -> bytes:
    if not span.events:
        return b""
    return b"".join(
        _field(
            b"\x5a",
            b"\x09"
            + _fixed64(event.timestamp)
            + _text(b"\x12", event.name)
            + _attributes(b"\x1a", event.attributes)
            + _count(b"\x20", event.dropped_attributes),
        )
        for event in span.events
    )


def _links(span: ReadableSpan) -> bytes:
    if not span.links:
        return b""
    return b"".join(
        _field(
            b"\x6a",
            _ids(link.context)
            + _attributes(b"\x22", link.attributes)
            + _count(b"\x28", link.dropped_attributes)
            + b"\x35"
            + _span_flags(link.context),
        )
        for link in span.links
    )


def _status(status: Status) -> bytes:
    message = _text(b"\x12", status.description) if status.description else b""
    return message + _count(b"\x18", status.status_code.value)


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None  # an ended SDK span always has one
    parent, status = span.parent, span.status
    parts = [_ids(context)]
    if context.trace_state:
        parts.append(_text(b"\x1a", ",".join(f"{key}={value}" for key, value in context.trace_state.items())))
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
    parts += [
        _text(b"\x2a", span.name),
        b"\x30" + _SMALL[_KIND[span.kind]],
        b"\x39" + _fixed64(span.start_time or 0),
        b"\x41" + _fixed64(span.end_time or 0),
        _attributes(b"\x4a", span.attributes),
        _count(b"\x50", span.dropped_attributes),
        _events(span),
        _count(b"\x60", span.dropped_events),
        _links(span),
        _count(b"\x70", span.dropped_links),
        _field(b"\x7a", _status(status)),
        b"\x85\x01" + _span_flags(parent),
    ]
    return b"".join(parts)


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    version = _text(b"\x12", scope.version) if scope.version else b""
    return _text(b"\x0a", scope.name) + version + _attributes(b"\x1a", scope.attributes)


def _scope_spans(scope: InstrumentationScope | None, spans: list[bytes]) -> bytes:
    schema = _text(b"\x1a", scope.schema_url) if scope is not None and scope.schema_url else b""
    return _field(b"\x12", _field(b"\x0a", _scope(scope)) + b"".join(spans) + schema)


def _resource_spans(resource: Resource, scopes: dict[InstrumentationScope | None, list[bytes]]) -> bytes:
    body = _field(b"\x0a", _attributes(b"\x0a", resource.attributes))
    body += b"".join(_scope_spans(scope, spans) for scope, spans in scopes.items())
    if resource.schema_url:
        body += _text(b"\x1a", resource.schema_url)
    return _field(b"\x0a", body)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest: spans grouped by resource, then by instrumentation scope."""
    # A process has one Resource object: grouping by identity spares hashing it (a JSON dump) per span.
    grouped: dict[int, tuple[Resource, dict[InstrumentationScope | None, list[bytes]]]] = {}
    for span in spans:
        resource = span.resource
        _, scopes = grouped.setdefault(id(resource), (resource, {}))
        scopes.setdefault(span.instrumentation_scope or None, []).append(_field(b"\x12", _span(span)))
    return b"".join(_resource_spans(resource, scopes) for resource, scopes in grouped.values())


class OTLPSpanExporter(LibraryExporter):
    """The library's exporter (endpoint, headers, timeout, retries, compression) with `encode_spans`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            body = encode_spans(spans)
        except Exception:  # a span we cannot encode costs its batch, never the exporter thread
            log.exception("otlp.batch_unencodable")
            return SpanExportResult.FAILURE
        sent = self._client.export(body)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE
