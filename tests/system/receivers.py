"""Local stand-ins for the collectors the services report to: an OTLP/HTTP receiver and a Sentry endpoint."""

from __future__ import annotations

import gzip
import itertools
import json
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.system.processes import free_port


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    links: tuple[str, ...]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _decompress(body: bytes, encoding: str) -> bytes:
    """aiohttp inflates gzip and deflate bodies itself; only what it left compressed is left to do."""
    if encoding == "gzip" and body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)
    if encoding == "deflate" and body[:1] == b"\x78":
        return zlib.decompress(body)
    return body


@dataclass
class OtlpReceiver:
    url: str
    spans: list[ExportedSpan] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.authorization.append(request.headers.get("Authorization", ""))
        export = ExportTraceServiceRequest.FromString(
            _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        )
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ExportedSpan(
                            service=str(resource.get("service.name")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={
                                "resource": resource,
                                **{a.key: _value(a.value) for a in span.attributes},
                            },
                            links=tuple(link.span_id.hex() for link in span.links),
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    def in_trace(self, trace_id: str) -> list[ExportedSpan]:
        return [span for span in self.spans if span.trace_id == trace_id]


@dataclass
class SentryReceiver:
    dsn: str
    envelopes: list[list[dict[str, Any]]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
        self.raw.append(body)
        items = []
        for line in body.split(b"\n"):
            try:
                items.append(json.loads(line))
            except ValueError:
                continue
        self.envelopes.append(items)
        return web.json_response({})

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Payloads of the items whose header says `type: kind` (event, transaction, ...)."""
        found = []
        for items in self.envelopes:
            for header, payload in itertools.pairwise(items):
                if isinstance(header, dict) and header.get("type") == kind:
                    found.append(payload)
        return found


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield port
    finally:
        await runner.cleanup()


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    app = web.Application()
    receiver = OtlpReceiver(url="")
    app.router.add_post("/v1/traces", receiver.handle)
    async with serve(app) as port:
        receiver.url = f"http://127.0.0.1:{port}"
        yield receiver


@asynccontextmanager
async def sentry_receiver() -> AsyncIterator[SentryReceiver]:
    app = web.Application()
    receiver = SentryReceiver(dsn="")
    app.router.add_post("/api/{project}/envelope/", receiver.handle)
    app.router.add_post("/api/{project}/store/", receiver.handle)
    async with serve(app) as port:
        receiver.dsn = f"http://publickey@127.0.0.1:{port}/1"
        yield receiver
