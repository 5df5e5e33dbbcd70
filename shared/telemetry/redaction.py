"""Keeping credentials out of what leaves a process: URLs shown without their passwords, and the
configured secret values found and masked in log lines and error reports, the last line of defence
behind SecretStr settings (which already never print themselves)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, Secret, SecretStr

MASK = "***"
# Shorter values would mask ordinary words (a dev stack's `guest`) all over the logs for no gain.
MIN_SECRET_LENGTH = 4


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced, so it can be logged or shown in an error.

    Several URLs separated by commas (the nodes of a broker cluster) are masked each; a PostgreSQL URL with
    several hosts (`user:pw@a:5432,b:5432`) splits into pieces of which only the first carries a password.
    """
    return ",".join(_mask_one(piece) for piece in url.split(","))


def _mask_one(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}"))


def _parts(raw: str) -> set[str]:
    """The secret itself and the pieces of it that could appear on their own."""
    found = {raw}
    urls = [urlsplit(piece) for piece in raw.split(",")]  # a list of broker nodes, or one URL
    if urls[0].scheme and urls[0].netloc:
        for parts in urls:
            if parts.password:
                found |= {parts.password, unquote(parts.password)}
            if parts.scheme in ("http", "https") and parts.username:
                found |= {parts.username, unquote(parts.username)}  # a Sentry DSN's key sits in the user name
        return found
    for item in raw.split(","):  # OTLP_HEADERS: `Authorization=Bearer <token>,X-Key=<value>`
        _, sep, value = item.partition("=")
        if sep and value.strip():
            found |= {value.strip(), value.split()[-1]}
    return found


def secret_values(settings: BaseModel) -> frozenset[str]:
    """Every credential a settings object holds (its SecretStr and Secret fields), with its parts."""
    found: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr | Secret):
            found |= _parts(str(value.get_secret_value()))
    return frozenset(value for value in found if len(value) >= MIN_SECRET_LENGTH)


class Redactor:
    """Replaces known secret values, as written raw, percent-encoded or JSON-escaped, with a mask."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants = {form for secret in secrets for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1])}
        # Longest first, so a secret that contains another is masked whole.
        self._variants = sorted((v for v in variants if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._variants)

    def text(self, value: str) -> str:
        for secret in self._variants:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def deep(self, value: Any) -> Any:
        """The same, through the dicts and lists of an event (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value
