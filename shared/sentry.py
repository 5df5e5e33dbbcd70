"""Sentry for errors: no PII, no credentials or image bytes, no transactions for probes and admin pages."""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk

from shared.settings import BaseServiceSettings
from shared.tracing import UNTRACED_PATHS

SECRET_HEADERS = re.compile(r"authorization|cookie|x-api-key|api-key|proxy-authorization|idempotency-key", re.I)
SECRET_KEYS = re.compile(r"password|secret|token|api_key|apikey|dsn|authorization|cookie", re.I)
FILTERED = "[Filtered]"


def _scrub_request(request: dict[str, Any]) -> None:
    headers = request.get("headers") or {}
    for name in list(headers):
        if SECRET_HEADERS.search(name):
            headers[name] = FILTERED
    request.pop("cookies", None)
    # Multipart bodies carry the photo itself: never ship it.
    request.pop("data", None)
    env = request.get("env") or {}
    env.pop("REMOTE_ADDR", None)


def _scrub_values(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: FILTERED if SECRET_KEYS.search(str(k)) else _scrub_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_values(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    return value


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    """The last look at every event before it leaves the process."""
    if isinstance(event.get("request"), dict):
        _scrub_request(event["request"])
    event.pop("user", None)
    for key in ("extra", "contexts"):
        if key in event:
            event[key] = _scrub_values(event[key])
    for exception in (event.get("exception") or {}).get("values", []):
        for frame in (exception.get("stacktrace") or {}).get("frames", []):
            if "vars" in frame:
                frame["vars"] = _scrub_values(frame["vars"])
    return event


def traces_sampler(context: dict[str, Any]) -> float:
    """Health checks and admin pages are never traced; the rest at the configured rate.

    Sentry names aiohttp transactions after the handler, not the path, so an
    `ignore_transactions=["/health"]` rule never matches: decide on the request path instead.
    """
    request = context.get("aiohttp_request")
    if request is not None and UNTRACED_PATHS.match(request.path):
        return 0.0
    parent = context.get("parent_sampled")
    if parent is not None:
        return float(parent)
    return float(context.get("luster_rate", 0.0))


def setup_sentry(service: str, settings: BaseServiceSettings) -> None:
    rate = settings.sentry_traces_sample_rate

    def sampler(context: dict[str, Any]) -> float:
        return traces_sampler({**context, "luster_rate": rate})

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.environment,
        release=settings.app_version,
        server_name=service,
        send_default_pii=False,
        traces_sampler=sampler,
        # Transactions carry the request too, and skip before_send: scrub both.
        before_send=before_send,  # type: ignore[arg-type]  # sentry's Event TypedDict is a dict at run time
        before_send_transaction=before_send,  # type: ignore[arg-type]  # likewise
        max_request_body_size="never",
    )
    sentry_sdk.set_tag("service", f"luster-{service}")
