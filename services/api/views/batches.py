"""Batch endpoints: a listing's photos submitted, read, canceled, followed and downloaded together."""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import structlog
from aiohttp import web
from opentelemetry import trace

from services.api import keys
from services.api.allowance import Allowance
from services.api.batch_schemas import (
    MAX_BATCH_JOBS,
    BatchCreate,
    BatchEnvelope,
    BatchListQuery,
    BatchOut,
    BatchPage,
    BatchPhotos,
    BatchSummary,
)
from services.api.bodies import parse_model, read_form, read_json
from services.api.limits import IN_FLIGHT_RETRY_AFTER_S
from services.api.uploads import Upload, check_image, display_name, store_checked
from shared import batches, cancellation, idempotency, progress
from shared.batches import Batch, NewBatch
from shared.domain import JobStatus, Tier
from shared.errors import InputError, InvalidField, MalformedBody, NotFound, TooManyRequests
from shared.http.params import path_uuid
from shared.jobs import NewJob
from shared.telemetry.tracing import trace_id_of
from shared.webhooks.subscription import event_names
from shared.webhooks.targets import check_target

log = structlog.get_logger()


async def load_batch(request: web.Request) -> Batch:
    batch_id = path_uuid(request, "batch_id")
    batch = await batches.get_batch(request.app[keys.POOL], batch_id, owner=request[keys.CALLER].owner)
    if batch is None:
        raise NotFound(f"batch {batch_id} does not exist", field="batch_id")
    return batch


async def _respond(request: web.Request, batch: Batch, status: int) -> web.Response:
    pool = request.app[keys.POOL]
    jobs = await batches.batch_jobs(pool, batch.id)
    eta = await progress.batch_eta_seconds(pool, jobs)
    body = BatchEnvelope(batch=BatchOut.with_jobs(batch, jobs, eta)).model_dump_json()
    return web.json_response(text=body, status=status, headers={"Location": f"/batches/{batch.id}"})


def _require_room(allowance: Allowance, jobs: int) -> None:
    """Every job of the batch counts against the jobs in flight: all of them fit, or none is taken."""
    if allowance.in_flight + jobs > allowance.in_flight_limit:
        raise TooManyRequests(
            f"{allowance.in_flight} jobs of this key are queued or processing; {jobs} more would pass the limit "
            f"of {allowance.in_flight_limit}",
            code="too_many_jobs_in_flight",
            headers={**allowance.headers(), "Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)},
        )


async def _find_replay(request: web.Request, print_: str) -> Batch | None:
    """The batch an earlier request with this key created; 409 when that request was different."""
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return None
    owner, ttl_s = request[keys.CALLER].owner, request.app[keys.SETTINGS].idempotency_ttl_s
    existing = await batches.find_by_idempotency_key(request.app[keys.POOL], owner, key, ttl_s=ttl_s)
    if existing is not None:
        idempotency.refuse_different(existing.request_fingerprint, print_)
    return existing


async def _checked(request: web.Request, body: BatchCreate) -> None:
    """Every asset the caller's, every prompt allowed, every webhook a target we may call; cheapest first."""
    caller, pool = request[keys.CALLER], request.app[keys.POOL]
    missing = await batches.missing_assets(pool, [job.asset_id for job in body.jobs], owner=caller.owner)
    if missing:
        index = next(i for i, job in enumerate(body.jobs) if job.asset_id == missing[0])
        raise NotFound(f"asset {missing[0]} does not exist", field=f"jobs.{index}.asset_id")
    await _allowed(
        request, [job.prompt for job in body.jobs], [body.webhook_url, *(job.webhook_url for job in body.jobs)]
    )


async def _allowed(request: web.Request, prompts: list[str], urls: list[str | None]) -> None:
    """Every prompt past moderation, every webhook a target we may call."""
    for prompt in dict.fromkeys(prompts):
        await request.app[keys.MODERATOR].check(prompt)
    allow_private = request.app[keys.SETTINGS].webhook_allow_private_targets
    for url in dict.fromkeys(url for url in urls if url):
        await check_target(url, allow_private=allow_private)


def _new_jobs(request: web.Request, body: BatchCreate) -> list[NewJob]:
    """The batch's jobs; a job's own webhook URL or events stand in for the batch's."""
    caller, trace_id = request[keys.CALLER], trace_id_of(trace.get_current_span())
    return [
        NewJob(
            job.asset_id,
            job.prompt,
            job.tier,
            job.style,
            caller.owner,
            trace_id=trace_id,
            api_key_id=caller.key.id,
            webhook_url=job.webhook_url or body.webhook_url,
            webhook_events=event_names(job.webhook_events if job.webhook_events is not None else body.webhook_events),
        )
        for job in body.jobs
    ]


async def create_batch(request: web.Request) -> web.Response:
    """Accept a listing, every job or none in one transaction: uploaded assets (JSON), or the photos (a form)."""
    if request.content_type == "multipart/form-data":
        return await _accept_photos(request)
    if request.content_type != "application/json":
        raise MalformedBody("send application/json (uploaded assets) or multipart/form-data (the photos)")
    body = parse_model(BatchCreate, await read_json(request))
    for job in body.jobs:
        request[keys.CALLER].require_tier(job.tier)
    print_ = _fingerprint(body.model_dump_json())
    if (replay := await _find_replay(request, print_)) is not None:
        return await _respond(request, replay, 200)
    _require_room(request[keys.ALLOWANCE], len(body.jobs))
    await _checked(request, body)
    return await _create(request, body, print_)


async def _accept_photos(request: web.Request) -> web.Response:
    """The photos become assets once every check has passed (one bad photo stores none), then a batch."""
    settings, caller = request.app[keys.SETTINGS], request[keys.CALLER]
    form = await read_form(
        request,
        max_file_bytes=settings.max_upload_bytes,
        max_files=MAX_BATCH_JOBS,
        max_total_file_bytes=settings.max_batch_upload_bytes,
    )
    try:
        options = parse_model(BatchPhotos, form.fields)
        if not form.files:
            raise InvalidField("send the photos as `file` parts, one per photo", field="file")
        caller.require_tier(options.tier or Tier.FREE)
        print_ = _fingerprint(options.model_dump_json(), *(upload.sha256 for upload in form.files))
        if (replay := await _find_replay(request, print_)) is not None:
            return await _respond(request, replay, 200)
        _require_room(request[keys.ALLOWANCE], len(form.files))
        request[keys.ALLOWANCE].require_bytes(sum(upload.size for upload in form.files))
        await _allowed(request, [options.prompt or ""], [options.webhook_url])
        asset_ids = await _store_photos(request, form.files)
    finally:
        form.close()
    return await _create(request, options.batch(asset_ids), print_)


async def _store_photos(request: web.Request, photos: list[Upload]) -> list[uuid.UUID]:
    limits, pool, store = request.app[keys.DECODES], request.app[keys.POOL], request.app[keys.UPLOADS]
    checked = []
    for index, photo in enumerate(photos):
        try:
            checked.append(await check_image(photo.file, limits))
        except InputError as error:
            name = display_name(photo.filename) or "no name"
            raise type(error)(f"photo {index + 1} ({name}): {error.message}", field=f"file.{index}") from error
    owner = request[keys.CALLER].owner
    return [
        (await store_checked(pool, store, photo, info, owner=owner, job_follows=True)).id
        for photo, info in zip(photos, checked, strict=True)
    ]


def _fingerprint(*parts: str) -> str:
    """What makes two requests with one Idempotency-Key "the same"."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


async def _create(request: web.Request, body: BatchCreate, print_: str) -> web.Response:
    settings, pool, caller = request.app[keys.SETTINGS], request.app[keys.POOL], request[keys.CALLER]
    key, ttl_s = request.headers.get(idempotency.HEADER), settings.idempotency_ttl_s
    new = NewBatch(caller.owner, caller.key.id, key, print_, body.webhook_url, event_names(body.webhook_events))
    if key is not None:
        await batches.release_expired_idempotency_key(pool, caller.owner, key, ttl_s=ttl_s)
    try:
        batch, _ = await batches.queue_batch(
            pool,
            request.app[keys.BROKER],
            new,
            _new_jobs(request, body),
            fair_share_cap=settings.fair_share_queued,
        )
    except asyncpg.UniqueViolationError:
        # Two requests with one key raced; the loser answers with the winner's batch.
        replay = await _find_replay(request, print_)
        if replay is None:
            raise
        return await _respond(request, replay, 200)
    return await _respond(request, batch, 201)


async def get_batch(request: web.Request) -> web.Response:
    return await _respond(request, await load_batch(request), 200)


async def list_batches(request: web.Request) -> web.Response:
    query = parse_model(BatchListQuery, dict(request.query))
    page = await batches.list_batches(
        request.app[keys.POOL], owner=request[keys.CALLER].owner, cursor=query.cursor, limit=query.limit
    )
    summaries = [BatchSummary.of(batch, standing) for batch, standing in page.batches]
    return web.json_response(text=BatchPage(batches=summaries, next_cursor=page.next_cursor).model_dump_json())


async def cancel_batch(request: web.Request) -> web.Response:
    """Cancel every job still queued; those already processing run on."""
    batch = await load_batch(request)
    pool, broker, cap = request.app[keys.POOL], request.app[keys.BROKER], request.app[keys.SETTINGS].fair_share_queued
    # Newest first: the held jobs are the newest, and canceling them first releases no other to the queues.
    for job in reversed(await batches.batch_jobs(pool, batch.id)):
        if job.status is JobStatus.QUEUED:
            await cancellation.cancel_job(pool, broker, job.id, fair_share_cap=cap)  # None: it started meanwhile
    return await _respond(request, batch, 200)
