"""What a route declares: the record the router and the OpenAPI document both read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Header:
    """A header every success answer of a route carries."""

    name: str
    description: str


@dataclass(frozen=True)
class Endpoint:
    """One route: its handler, what it takes and what it answers."""

    method: str
    path: str
    handler: Handler
    summary: str
    status: int = 200
    # Its answer when the call repeats one that already succeeded and nothing new is made, if not `status`.
    replay_status: int | None = None
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    # Request headers it reads besides Authorization, as a model whose field aliases are the header names.
    headers: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    # Headers its success answers carry besides those of its `limit`.
    response_headers: tuple[Header, ...] = ()
    upload: bool = False
    # The field of `request` that a multipart `file` stands in for: exactly one of the two is sent.
    file_replaces: str | None = None
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"
    # Answers 307 to a short-lived URL of the object store where the store has one.
    redirects: bool = False
    # Open to anyone; every other endpoint needs an API key (services/api/auth.py).
    public: bool = False
    # The per-key request budget it spends (services/api/limits.py), if any.
    limit: Literal["uploads", "jobs"] | None = None
    tags: tuple[str, ...] = ("jobs",)
