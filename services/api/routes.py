"""Every API endpoint in one table: the router and the OpenAPI document both read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from services.api.schemas import AssetEnvelope, HealthOut, JobCreate, JobEnvelope, JobListQuery, JobPage
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
        "Download the enhanced image",
        errors=(404, 409, 422),
        media_type="image/jpeg",
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
