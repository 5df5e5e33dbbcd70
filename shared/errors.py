"""The domain exception tree, raised low and translated only at the edges.

LusterError
├── InputError                 the caller sent something we will not accept (HTTP 4xx)
│   ├── InvalidField           a field is missing or malformed (422)
│   ├── MalformedBody          the body does not parse (400)
│   ├── PayloadTooLarge        an upload over the size cap (413)
│   ├── UnsupportedMediaType   a body in a form or encoding we do not take (415)
│   │   └── UnsupportedImage   not an image we accept, or a broken one (415)
│   ├── NotFound               no such asset or job, or not the caller's (404)
│   ├── Conflict               the request contradicts the current state (409)
│   ├── Unauthenticated        no API key, or one that is not (or no longer) valid (401)
│   ├── Forbidden              the key's plan does not allow it (403)
│   └── TooManyRequests        over one of the key's limits; says when to come back (429)
├── EngineError                the enhancement engine could not produce an image
│   ├── TransientEngineError   worth another attempt later (timeouts, 429, 5xx)
│   └── PermanentEngineError   will fail the same way every time (bad image, 4xx)
├── DependencyUnavailable      PostgreSQL, RabbitMQ or the worker's engine processes do not answer (HTTP 503)
└── PoisonMessage              a broker message no retry can fix: dead-letter it with the reason
"""

from __future__ import annotations

from decimal import Decimal


class LusterError(Exception):
    """Base of every error Luster raises on purpose."""

    code = "internal_error"

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}  # HTTP headers the answer carries (Retry-After, WWW-Authenticate)
        if code is not None:
            self.code = code


class InputError(LusterError):
    """The caller sent something we will not accept."""

    code = "invalid_input"


class InvalidField(InputError):
    """A field is missing or malformed."""

    code = "invalid_field"


class MalformedBody(InputError):
    """The request body does not parse."""

    code = "malformed_body"


class PayloadTooLarge(InputError):
    """An upload is over the size cap."""

    code = "payload_too_large"


class RangeNotSatisfiable(InputError):
    """A Range request for bytes the file does not have."""

    code = "range_not_satisfiable"

    def __init__(self, size: int, message: str) -> None:
        super().__init__(message, field="Range", headers={"Content-Range": f"bytes */{size}"})


class UnsupportedMediaType(InputError):
    """A body in a media type or content coding we do not take."""

    code = "unsupported_media_type"


class UnsupportedImage(UnsupportedMediaType):
    """Not an image format we accept, or a truncated or hostile image."""

    code = "unsupported_image"


class NotFound(InputError):
    """No such asset or job."""

    code = "not_found"


class Conflict(InputError):
    """The request contradicts the current state of the resource."""

    code = "conflict"


class Unauthenticated(InputError):
    """No API key, or one that is not (or no longer) valid."""

    code = "unauthenticated"


class Forbidden(InputError):
    """The caller is known, and not allowed to do this."""

    code = "forbidden"


class TooManyRequests(InputError):
    """Over one of the caller's limits."""

    code = "rate_limited"


class EngineError(LusterError):
    """The enhancement engine could not produce an image; `cost` is what the failed attempt was billed."""

    code = "engine_error"

    def __init__(self, message: str, *, code: str | None = None, cost: Decimal = Decimal("0")) -> None:
        super().__init__(message, code=code)
        self.cost = cost


class TransientEngineError(EngineError):
    """A failure worth another attempt later; no sooner than `retry_after_s` when the engine said so."""

    code = "engine_transient"

    def __init__(
        self, message: str, *, code: str | None = None, cost: Decimal = Decimal("0"), retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code=code, cost=cost)
        self.retry_after_s = retry_after_s


class PermanentEngineError(EngineError):
    """A failure that would repeat on every attempt."""

    code = "engine_permanent"


class DependencyUnavailable(LusterError):
    """PostgreSQL or RabbitMQ does not answer, or the worker's engine processes do not start."""

    code = "dependency_unavailable"


class PoisonMessage(LusterError):
    """A broker message that no retry can fix; it is dead-lettered with the reason."""

    code = "poison_message"
