"""Where the API is and the key to call it with, from LUSTER_API_URL and LUSTER_API_KEY."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from luster_client.errors import ConfigError

DEFAULT_URL = "http://localhost:8000"


@dataclass(frozen=True)
class Config:
    url: str
    key: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        key = environ.get("LUSTER_API_KEY", "").strip()
        if not key:
            raise ConfigError("LUSTER_API_KEY is not set: export an API key (lus_…) an operator created for you")
        url = environ.get("LUSTER_API_URL", "").strip() or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"LUSTER_API_URL must be an http(s) URL, not {url!r}")
        return cls(url=url.rstrip("/"), key=key)
