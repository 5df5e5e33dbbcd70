"""What a route declares: the record the router and the OpenAPI document both read."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Header:
    """A header the success answers of a route carry: every one, or only some (`required=False`)."""

    name: str
    description: str
    required: bool = True


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
    # A form that takes other fields than `request` and up to this many `file` parts (a batch's photos).
    form: type[BaseModel] | None = None
    max_files: int = 1
    errors: tuple[int, ...] = ()
    # Of the success answer; with `response`, that model is its body (or each event of a text/event-stream).
    media_type: str = "application/json"
    # Answers 307 to a short-lived URL of the object store where the store has one.
    redirects: bool = False
    # Open to anyone; every other endpoint needs an API key (services/api/auth.py).
    public: bool = False
    # The per-key request budget it spends (services/api/limits.py), if any.
    limit: Literal["uploads", "jobs"] | None = None
    tags: tuple[str, ...] = ("jobs",)


def router_path(path: str, paths: Collection[str]) -> str:
    """`path` as the router matches it: a parameter never takes the name of a fixed sibling segment.

    `/assets/uploads` is no `/assets/{asset_id}`: without this both match it, and its 405 would list GET in
    `Allow`, a method the document never gave that path.
    """
    segments = path.split("/")
    for index, segment in enumerate(segments):
        name = re.fullmatch(r"{(\w+)}", segment)
        siblings = sorted({other.split("/")[index] for other in paths if _sibling(other.split("/"), segments, index)})
        if name and siblings:
            taken = "|".join(re.escape(sibling) for sibling in siblings)
            segments[index] = f"{{{name[1]}:(?!(?:{taken})(?:/|$))[^/]+}}"
    return "/".join(segments)


def _sibling(other: list[str], segments: list[str], index: int) -> bool:
    """`other` is as long, shares the segments before `index`, and has a fixed one at it."""
    return len(other) == len(segments) and other[:index] == segments[:index] and "{" not in other[index]
