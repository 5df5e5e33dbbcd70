"""Every API endpoint in one table: the router and the OpenAPI document both read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from services.api.schemas import (
    AssetEnvelope,
    DirectUploadEnvelope,
    HealthOut,
    JobCreate,
    JobEnvelope,
    JobListQuery,
    JobPage,
)
from services.api.views import assets, jobs, system

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    status: int = 200
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    upload: bool = False
    errors: tuple[int, ...] = ()
    media_type: str = "application/json"
    # Answers 307 to a short-lived URL of the object store where the store has one.
    redirects: bool = False
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
    ),
    Endpoint(
        "POST",
        "/assets/{asset_id}/complete",
        assets.complete_upload,
        "Finish a direct upload: check the photo the store received and create the asset",
        201,
        response=AssetEnvelope,
        errors=(404, 409, 413, 415, 422, 503),
        tags=("assets",),
    ),
    Endpoint(
        "POST",
        "/jobs",
        jobs.create_job,
        "Submit an enhancement job",
        202,
        request=JobCreate,
        response=JobEnvelope,
        upload=True,
        errors=(400, 404, 409, 413, 415, 422),
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
    ),
)

UNDOCUMENTED: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/openapi.json", system.openapi_document),
    ("GET", "/docs", system.docs),
)


def setup_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
    for method, path, handler in UNDOCUMENTED:
        app.router.add_route(method, path, handler)
