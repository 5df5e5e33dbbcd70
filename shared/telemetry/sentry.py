"""Sentry for errors: no PII, no credentials or image bytes, no transactions for probes and admin pages.

No local variables are captured at all: a frame's locals hold the settings, URLs with passwords and
the OpenAI key, and scrubbing by variable name cannot know them all. As a last look, every configured
secret value is masked wherever it still appears in an event (an exception message, a breadcrumb).
"""

from __future__ import annotations

import re
from typing import Any

import sentry_sdk

from shared.settings import BaseServiceSettings, HttpServiceSettings
from shared.telemetry.redaction import Redactor, secret_values
from shared.telemetry.tracing import UNTRACED_PATHS

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


def scrubber(settings: BaseServiceSettings) -> Any:
    """`before_send`, then every configured secret value masked wherever it is left in the event."""
    redactor = Redactor(secret_values(settings))

    def scrub(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        scrubbed: dict[str, Any] = redactor.deep(before_send(event, hint))
        return scrubbed

    return scrub


def setup_sentry(service: str, settings: BaseServiceSettings) -> None:
    rate = settings.sentry_traces_sample_rate
    # An untrusted client's sentry-trace header must not decide what we sample (and pay for).
    trusted = not isinstance(settings, HttpServiceSettings) or settings.trusts_incoming_trace

    def sampler(context: dict[str, Any]) -> float:
        if not trusted and context.get("aiohttp_request") is not None:
            context = {**context, "parent_sampled": None}
        return traces_sampler({**context, "luster_rate": rate})

    assert settings.sentry_dsn is not None  # called only when it is set
    scrub = scrubber(settings)
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        release=settings.app_version,
        server_name=service,
        send_default_pii=False,
        traces_sampler=sampler,
        include_local_variables=False,
        # Transactions carry the request too, and skip before_send: scrub both.
        before_send=scrub,
        before_send_transaction=scrub,
        max_request_body_size="never",
    )
    sentry_sdk.set_tag("service", f"luster-{service}")
