"""What aiohttp's HTTP parser refuses, answered in the JSON error shape; the parser's limits."""

from __future__ import annotations

import structlog
from aiohttp import web, web_server
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from shared.http.json_errors import closing, error_response

log = structlog.get_logger()

# aiohttp's parser limits, told apart by value: its LineTooLong names only the limit it hit, so a request
# line over 8192 bytes (414) and a header field over 8190 (431) are distinguishable. Pass as handler_args.
PARSER_LIMITS: dict[str, int] = {"max_line_size": 8192, "max_field_size": 8190, "max_headers": 64}


class JsonProtocolErrors(RequestHandler):
    """aiohttp's connection handler, answering what its HTTP parser refuses in our JSON error shape.

    A request line or header the parser cannot take never reaches the application or its middleware:
    aiohttp answers it itself, as plain text. This subclass is the only place that answer can change.
    """

    __slots__ = ()

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp does: an answer has begun, the connection is broken
            raise ConnectionError("response already started; cannot answer with an error")
        status, code, text = self._describe(status, exc)
        # Client mistakes are routine on the internet: a debug line, not an error with a traceback (and so
        # not a Sentry event); anything else is ours.
        if status < 500:
            log.debug("http.protocol_error", status=status, error=type(exc).__name__)
        else:
            log.error("http.protocol_crash", status=status, exc_info=exc)
        return closing(error_response(status, code, text))

    def _describe(self, status: int, exc: BaseException | None) -> tuple[int, str, str]:
        if isinstance(exc, LineTooLong):
            if exc.args[1] == self.max_line_size != self.max_field_size:
                return 414, "uri_too_long", f"the request line is longer than {self.max_line_size} bytes"
            return 431, "header_too_large", f"a header is longer than {self.max_field_size} bytes"
        if isinstance(exc, HttpProcessingError) and "Too many headers" in exc.message:
            return 431, "too_many_headers", f"the request has more than {self.max_headers} headers"
        if isinstance(exc, BadHttpMethod):
            return 400, "malformed_request", "the request method is not a valid HTTP token"
        if status < 500:
            return 400, "malformed_request", "the request is not valid HTTP/1.1"
        return status, "internal_error", "something went wrong on our side; it has been logged"


def answer_protocol_errors_in_json() -> None:
    """Make every aiohttp server of this process answer parser errors with JSON (idempotent).

    aiohttp builds its connection handler by this module-level name and offers no other hook.
    """
    web_server.RequestHandler = JsonProtocolErrors  # type: ignore[attr-defined]  # the one seam aiohttp has
