"""What the client raises.

LusterClientError
 ├── ConfigError      LUSTER_API_URL / LUSTER_API_KEY missing or unusable
 ├── TransportError   the API could not be reached, retries included
 └── ApiError         the API answered with an error: status, code, message, field
"""

from __future__ import annotations


class LusterClientError(Exception):
    """Anything the client raises on purpose."""


class ConfigError(LusterClientError):
    """The client's configuration is missing or unusable."""


class TransportError(LusterClientError):
    """The API did not answer (after the retries an idempotent call is allowed)."""


class ApiError(LusterClientError):
    """An error answer of the API, `{"error": {"code", "message", "field"}}`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        where = f" ({field})" if field else ""
        super().__init__(f"{status} {code}: {message}{where}")
