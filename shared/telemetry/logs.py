"""Logging configured once per process: structlog for our lines and the stdlib's, JSON off a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from opentelemetry import trace
from structlog.types import EventDict, Processor

from shared.telemetry.redaction import Redactor


def brief(error: BaseException) -> str:
    """An expected failure in a few words, for a log field: its message, or its type where it has none."""
    return str(error) or type(error).__name__


def _add_trace_context(_: Any, __: str, event_dict: EventDict) -> EventDict:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def _redacting(redactor: Redactor) -> Processor:
    """Masks the configured secrets in the finished line: ours, and what libraries log (a URL, an error)."""

    def redact(_: Any, __: str, line: Any) -> Any:
        return redactor.text(line) if isinstance(line, str) else line

    return redact


def configure_logging(
    service: str, level: str = "INFO", *, json: bool | None = None, secrets: Iterable[str] = ()
) -> None:
    """Route structlog and stdlib logging (aiohttp, aio_pika, asyncpg) through one renderer.

    `secrets` (the settings' credentials) never reach the output, whoever logs them.
    """
    render_json = not sys.stderr.isatty() if json is None else json
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_context,
        lambda _, __, event_dict: {"service": service, **event_dict},
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if render_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # A line below the level is dropped before the rest of the chain stamps and formats it for nothing.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
                _redacting(Redactor(secrets)),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiormq narrates every frame at INFO; its warnings still come through.
    logging.getLogger("aiormq").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aio_pika").setLevel(max(logging.WARNING, root.level))
