"""Health, the OpenAPI document and the page that renders it."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.api import keys
from services.api.files import file_response
from services.api.schemas import HealthOut
from shared.db import ping

DOCS_PAGE = Path(__file__).parent.parent / "docs.html"


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


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(request.app[keys.OPENAPI])


async def docs(request: web.Request) -> web.FileResponse:
    return await file_response(request, DOCS_PAGE, "text/html; charset=utf-8")
