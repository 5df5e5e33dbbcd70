"""Health, metrics, the OpenAPI document and the page that renders it."""

from __future__ import annotations

from aiohttp import web

from services.api import docs as docs_files
from services.api import keys
from services.api.files import file_response
from services.api.schemas import HealthOut
from shared.db import ping
from shared.errors import Unauthenticated
from shared.telemetry.metrics import bearer_matches, exposition

METRICS_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="luster-metrics"'}


async def health(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    database = await ping(request.app[keys.POOL])
    broker = await request.app[keys.BROKER].is_healthy()
    services = {name: "healthy" if ok else "unhealthy" for name, ok in (("database", database), ("broker", broker))}
    healthy = database and broker
    body = HealthOut(
        status="healthy" if healthy else "unhealthy",
        services=services,
        version=settings.app_version,
        environment=settings.environment,
    )
    return web.json_response(text=body.model_dump_json(), status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus' scrape, behind METRICS_TOKEN; without one, open except in production, where the route
    answers as any unknown path does: an internet-facing api shows its internals to no one by default."""
    settings = request.app[keys.SETTINGS]
    token = settings.metrics_token
    if token is None and settings.environment == "production":
        raise web.HTTPNotFound()
    if token is not None and not bearer_matches(request.headers.get("Authorization", ""), token):
        raise Unauthenticated(
            "send the metrics token as `Authorization: Bearer <METRICS_TOKEN>`",
            field="Authorization",
            headers=METRICS_CHALLENGE,
        )
    return exposition(request.app[keys.METRICS].registry, request.headers.get("Accept", ""))


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.OPENAPI])


async def docs(request: web.Request) -> web.FileResponse:
    return await file_response(request, docs_files.PAGE, "text/html; charset=utf-8", docs_files.PAGE_HEADERS)


async def docs_asset(request: web.Request) -> web.FileResponse:
    """One of the page's fixed files; its route is its own path (routes.py), so the lookup always finds it."""
    path, content_type = docs_files.ASSETS[request.path]
    return await file_response(request, path, content_type, docs_files.ASSET_HEADERS)
