"""Spans Luster makes by hand: HTTP server requests, message publish and consume (messaging conventions)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from shared.telemetry.setup import sdk_disabled

tracer = trace.get_tracer("luster")

# Background polling (outbox relay, queue probes) would open a new trace every few seconds.
untraced = suppress_instrumentation

# Probes and operator pages would drown the traces that matter. (\Z and DOTALL: a decoded path may hold
# a newline, which `$` and `.` would stop at.)
UNTRACED_PATHS = re.compile(r"^/(health|metrics|admin(/.*)?)\Z", re.DOTALL)


def instrumented_if_kept(span: Span) -> AbstractContextManager[None]:
    """The libraries' instrumentation (asyncpg's queries, aiohttp's client calls) only in a trace that is
    kept. In one the sampler dropped, their spans are made only to be thrown away, yet making them was
    most of what an unsampled request cost; the trace's context still travels with every message.
    """
    return nullcontext() if span.is_recording() else suppress_instrumentation()


def trace_id_of(span: Span) -> str | None:
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _incoming(request: web.Request, *, trusted: bool) -> tuple[Context | None, list[Link]]:
    """The parent of the request's span, and its links.

    An untrusted caller's context only becomes a link: the trace (and so the job's trace_id) is ours,
    yet a trace the client keeps can still be found from it.
    """
    if not any(field in request.headers for field in propagate.get_global_textmap().fields):
        return Context(), []  # most callers send no trace context: nothing to extract
    context = propagate.extract(request.headers)
    if trusted:
        return context, []
    remote = trace.get_current_span(context).get_span_context()
    return Context(), [Link(remote)] if remote.is_valid else []


def server_middlewares(*, trust_incoming: bool = True) -> list[Middleware]:
    """The SERVER span's middleware, or none with the SDK off (`OTEL_SDK_DISABLED`): every span would be the
    API's no-op one, and making it for each request cost a JSON submission 8 % of its instructions."""
    return [] if sdk_disabled() else [server_middleware(trust_incoming=trust_incoming)]


def server_middleware(*, trust_incoming: bool = True) -> Any:
    """A SERVER span per request, continuing the caller's trace context only when `trust_incoming`."""

    @web.middleware
    async def tracing(request: web.Request, handler: Handler) -> web.StreamResponse:
        if UNTRACED_PATHS.match(request.path):
            return await handler(request)
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        parent, links = _incoming(request, trusted=trust_incoming)
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=parent,
            links=links,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": route},
        ) as span:
            with instrumented_if_kept(span):
                response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    return tracing


def _messaging_attributes(destination: str, routing_key: str, message_id: str, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": message_id,
    }


@contextmanager
def publish_span(
    headers: Mapping[str, Any], *, exchange: str, routing_key: str, message_id: str
) -> Iterator[dict[str, Any]]:
    """A PRODUCER span in the trace the message was created in; yields the headers to send.

    The outbox may publish long after the request that staged the message (the relay): the span
    still joins the job's trace, and links to whatever is publishing it now.

    In a trace the sampler dropped no span is made: the parent-based samplers would drop it too, and a ratio
    sampler decides alike for every span of a trace (by its id). Made, unrecorded, it cost an unsampled JSON
    submission a third of what tracing costs it; the message still carries its trace on.
    """
    origin = propagate.extract({k: v for k, v in headers.items() if isinstance(v, str)})
    current = trace.get_current_span().get_span_context()
    origin_trace = trace.get_current_span(origin).get_span_context()
    parent = origin_trace if origin_trace.is_valid else current
    if not parent.is_valid:
        # Heartbeats and other messages outside any trace stay outside: no root span per beat.
        yield dict(headers)
        return
    if not parent.trace_flags.sampled:
        outgoing = dict(headers)
        if not origin_trace.is_valid:
            propagate.inject(outgoing)
        yield outgoing
        return
    links = [Link(current)] if current.is_valid and current.trace_id != origin_trace.trace_id else []
    destination = exchange or "(default)"
    with tracer.start_as_current_span(
        f"publish {routing_key}",
        context=origin if origin_trace.is_valid else None,
        kind=SpanKind.PRODUCER,
        links=links,
        attributes=_messaging_attributes(destination, routing_key, message_id, "publish"),
    ):
        outgoing = dict(headers)
        propagate.inject(outgoing)
        yield outgoing


@contextmanager
def consume_span(headers: Mapping[str, Any], *, queue: str, routing_key: str, message_id: str) -> Iterator[Span]:
    """A CONSUMER span, child of the span that published the message; in a trace the sampler dropped, none
    (see publish_span), the message handled in its trace all the same (log lines, the messages it sends)."""
    parent: Context = propagate.extract({k: v for k, v in headers.items() if isinstance(v, str)})
    publisher = trace.get_current_span(parent)
    if not publisher.get_span_context().is_valid:
        yield trace.INVALID_SPAN
        return
    if not publisher.get_span_context().trace_flags.sampled:
        with trace.use_span(publisher), suppress_instrumentation():
            yield publisher
        return
    started = time.perf_counter()
    with tracer.start_as_current_span(
        f"process {queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_messaging_attributes(queue, routing_key, message_id, "process"),
    ) as span:
        with instrumented_if_kept(span):
            yield span
        span.set_attribute("luster.duration_ms", round((time.perf_counter() - started) * 1000, 2))


def trace_link(ui_url: str | None, trace_id: str | None) -> str | None:
    """Where a trace UI (Jaeger's URL form) shows the trace; None without a UI or a trace."""
    return f"{ui_url.rstrip('/')}/trace/{trace_id}" if ui_url and trace_id else None
