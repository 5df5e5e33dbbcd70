"""Every API endpoint in one table: the router and the OpenAPI document (built by create_app) both read it."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

from services.api import docs, keys
from services.api.batch_schemas import (
    MAX_BATCH_JOBS,
    BatchCreate,
    BatchEnvelope,
    BatchEvent,
    BatchHeaders,
    BatchListQuery,
    BatchPage,
    BatchPhotos,
)
from services.api.endpoint import Endpoint, Handler, Header, router_path
from services.api.schemas import (
    AssetEnvelope,
    AssetListQuery,
    AssetPage,
    DirectUploadEnvelope,
    HealthOut,
    JobCreate,
    JobEnvelope,
    JobHeaders,
    JobListQuery,
    JobPage,
    WaitHeaders,
    WebhookSecretEnvelope,
)
from services.api.views import assets, batch_streams, batches, jobs, system, webhooks

# A browser may send these on a cross-origin call, and read these back.
CORS_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Prefer")
CORS_EXPOSED = (
    "Location",
    "Preference-Applied",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)
CORS_MAX_AGE_S = 600
ASSET_LOCATION = Header("Location", "The asset's path: `/assets/{asset_id}`")
JOB_LOCATION = Header("Location", "The job's path, where its status is read: `/jobs/{job_id}`")
BATCH_LOCATION = Header("Location", "The batch's path: `/batches/{batch_id}`")
WAIT_APPLIED = Header("Preference-Applied", "`wait=N` when the request asked to wait", required=False)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/assets",
        assets.create_asset,
        "Upload a photo (multipart `file`)",
        201,
        response=AssetEnvelope,
        response_headers=(ASSET_LOCATION,),
        upload=True,
        errors=(400, 413, 415, 422),
        tags=("assets",),
        limit="uploads",
    ),
    Endpoint(
        "GET",
        "/assets",
        assets.list_assets,
        "List your assets, newest first",
        query=AssetListQuery,
        response=AssetPage,
        errors=(422,),
        tags=("assets",),
    ),
    Endpoint(
        "GET",
        "/assets/{asset_id}",
        assets.get_asset,
        "Read an asset",
        response=AssetEnvelope,
        errors=(404, 422),
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
        limit="uploads",
    ),
    Endpoint(
        "POST",
        "/assets/{asset_id}/complete",
        assets.complete_upload,
        "Finish a direct upload: check the photo the store received and create the asset",
        201,
        response=AssetEnvelope,
        response_headers=(ASSET_LOCATION,),
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
        response_headers=(JOB_LOCATION, WAIT_APPLIED),
        upload=True,
        file_replaces="asset_id",
        errors=(400, 403, 404, 409, 413, 415, 422),
        limit="jobs",
    ),
    Endpoint(
        "GET", "/jobs", jobs.list_jobs, "List jobs, newest first", query=JobListQuery, response=JobPage, errors=(422,)
    ),
    Endpoint(
        "GET",
        "/jobs/{job_id}",
        jobs.get_job,
        "Read a job (with `Prefer: wait=N`, once it has finished or after N seconds)",
        headers=WaitHeaders,
        response=JobEnvelope,
        response_headers=(WAIT_APPLIED,),
        errors=(404, 422),
    ),
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
        response_headers=(JOB_LOCATION,),
        errors=(404, 409, 422),
    ),
    Endpoint(
        "GET",
        "/webhooks/secret",
        webhooks.get_secret,
        "Read the secret that signs your key's webhooks",
        response=WebhookSecretEnvelope,
        errors=(404,),
        tags=("webhooks",),
    ),
    Endpoint(
        "POST",
        "/webhooks/secret/rotate",
        webhooks.rotate_secret,
        "Replace the secret that signs your key's webhooks (deliveries sign with the new one within a minute)",
        response=WebhookSecretEnvelope,
        tags=("webhooks",),
    ),
    Endpoint(
        "POST",
        "/batches",
        batches.create_batch,
        "Submit a listing's photos together, uploaded (JSON) or sent along (a form): one job each, all or none",
        201,
        request=BatchCreate,
        upload=True,
        form=BatchPhotos,
        max_files=MAX_BATCH_JOBS,
        headers=BatchHeaders,
        response=BatchEnvelope,
        response_headers=(BATCH_LOCATION,),
        replay_status=200,
        errors=(400, 403, 404, 409, 413, 415, 422),
        tags=("batches",),
        limit="jobs",
    ),
    Endpoint(
        "GET",
        "/batches",
        batches.list_batches,
        "List your batches, newest first, with their jobs counted",
        query=BatchListQuery,
        response=BatchPage,
        errors=(422,),
        tags=("batches",),
    ),
    Endpoint(
        "GET",
        "/batches/{batch_id}",
        batches.get_batch,
        "Read a batch, with every job",
        response=BatchEnvelope,
        response_headers=(BATCH_LOCATION,),
        errors=(404, 422),
        tags=("batches",),
    ),
    Endpoint(
        "POST",
        "/batches/{batch_id}/cancel",
        batches.cancel_batch,
        "Cancel every job of the batch still queued (those already processing run on)",
        response=BatchEnvelope,
        response_headers=(BATCH_LOCATION,),
        errors=(404, 422),
        tags=("batches",),
    ),
    Endpoint(
        "GET",
        "/batches/{batch_id}/events",
        batch_streams.batch_events,
        "Follow a batch as Server-Sent Events: `job` for each job now and at each change, then `batch.completed`",
        response=BatchEvent,
        errors=(404, 422),
        media_type="text/event-stream",
        tags=("batches",),
    ),
    Endpoint(
        "GET",
        "/batches/{batch_id}/outputs.zip",
        batch_streams.batch_outputs,
        "Download every succeeded job's output in one zip, streamed",
        errors=(404, 409, 422),
        media_type="application/zip",
        tags=("batches",),
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

# Routes outside the API's contract: the document itself, its page, and /metrics, an operator's scrape target
# in Prometheus' text format behind its own token (views/system.py), not a call any client of the API makes.
UNDOCUMENTED: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/metrics", system.metrics),
    ("GET", "/openapi.json", system.openapi_document),
    ("GET", "/docs", system.docs),
    *(("GET", path, system.docs_asset) for path in docs.ASSETS),
)


def setup_routes(app: web.Application) -> None:
    """Every route, with CORS for the allowed origins; the handlers anyone may call; the limited ones."""
    paths = [endpoint.path for endpoint in ENDPOINTS]
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, router_path(endpoint.path, paths), endpoint.handler)
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
