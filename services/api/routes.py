"""Every API endpoint in one table: the router and the OpenAPI document both read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp_cors
from aiohttp import web
from pydantic import BaseModel

from services.api import keys
from services.api.schemas import (
    AssetEnvelope,
    DirectUploadEnvelope,
    HealthOut,
    JobCreate,
    JobEnvelope,
    JobHeaders,
    JobListQuery,
    JobPage,
)
from services.api.views import assets, jobs, system

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A browser may send these on a cross-origin call, and read these back.
CORS_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
CORS_EXPOSED = ("Location", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
CORS_MAX_AGE_S = 600


@dataclass(frozen=True)
class Endpoint:
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
    tags: tuple[str, ...] = field(default=("jobs",))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/assets",
        assets.create_asset,
        "Upload a photo (multipart `file`)",
        201,
        response=AssetEnvelope,
        upload=True,
        errors=(400, 413, 415, 422),
        tags=("assets",),
        limit="uploads",
    ),
    Endpoint(
        "POST",
        "/assets/uploads",
        assets.offer_upload,
        "Start a direct upload: a form to POST the photo straight to the object store",
        201,
        response=DirectUploadEnvelope,
        errors=(409, 503),
        tags=("assets",),
        limit="uploads",
    ),
    Endpoint(
        "POST",
        "/assets/{asset_id}/complete",
        assets.complete_upload,
        "Finish a direct upload: check the photo the store received and create the asset",
        201,
        response=AssetEnvelope,
        replay_status=200,
        errors=(404, 409, 413, 415, 422, 503),
        tags=("assets",),
        limit="uploads",
    ),
    Endpoint(
        "POST",
        "/jobs",
        jobs.create_job,
        "Submit an enhancement job",
        202,
        request=JobCreate,
        headers=JobHeaders,
        response=JobEnvelope,
        upload=True,
        file_replaces="asset_id",
        errors=(400, 403, 404, 409, 413, 415, 422),
        limit="jobs",
    ),
    Endpoint(
        "GET", "/jobs", jobs.list_jobs, "List jobs, newest first", query=JobListQuery, response=JobPage, errors=(422,)
    ),
    Endpoint("GET", "/jobs/{job_id}", jobs.get_job, "Read a job", response=JobEnvelope, errors=(404, 422)),
    Endpoint(
        "GET",
        "/jobs/{job_id}/output",
        jobs.get_output,
        "Download the enhanced image (from the object store, through a redirect, where there is one)",
        errors=(404, 409, 422),
        media_type="image/jpeg",
        redirects=True,
    ),
    Endpoint(
        "POST",
        "/jobs/{job_id}/cancel",
        jobs.cancel_job,
        "Cancel a queued job",
        response=JobEnvelope,
        errors=(404, 409, 422),
    ),
    Endpoint(
        "GET",
        "/health",
        system.health,
        "Health of the API and its dependencies",
        response=HealthOut,
        errors=(503,),
        tags=("system",),
        public=True,
    ),
)

UNDOCUMENTED: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/openapi.json", system.openapi_document),
    ("GET", "/docs", system.docs),
)


def setup_routes(app: web.Application) -> None:
    """Every route, with CORS for the allowed origins; the handlers anyone may call; the limited ones."""
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
    for method, path, handler in UNDOCUMENTED:
        app.router.add_route(method, path, handler)
    _allow_origins(app, app[keys.SETTINGS].cors_allowed_origins)
    app[keys.PUBLIC] = frozenset(
        [endpoint.handler for endpoint in ENDPOINTS if endpoint.public] + [handler for _, _, handler in UNDOCUMENTED]
    )
    app[keys.LIMITED] = {endpoint.handler: endpoint.limit for endpoint in ENDPOINTS if endpoint.limit}


def _allow_origins(app: web.Application, origins: list[str]) -> None:
    """Answer preflights and add CORS headers for `origins` only; with none, browsers get no CORS at all."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]  # the library ships no types
        allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED, max_age=CORS_MAX_AGE_S
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        cors.add(route)
