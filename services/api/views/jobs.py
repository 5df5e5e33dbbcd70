"""Job endpoints: submit, read, list, fetch the output, cancel."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from services.api import keys, waiting
from services.api.bodies import parse_model, read_form, read_json
from services.api.files import file_response
from services.api.schemas import JobCreate, JobEnvelope, JobListQuery, JobOut, JobPage
from services.api.submission import Idempotency, find_replay, fingerprint, submit
from services.api.uploads import Upload, store_asset
from shared import cancellation, jobs, progress
from shared.domain import JobStatus
from shared.errors import Conflict, InvalidField, MalformedBody, NotFound
from shared.http.params import path_uuid
from shared.jobs import Job
from shared.storage.local import LocalStore
from shared.webhooks import deliveries
from shared.webhooks.targets import check_target

IDEMPOTENCY_HEADER = "Idempotency-Key"


async def load_job(request: web.Request) -> Job:
    job_id = path_uuid(request, "job_id")
    job = await jobs.get_job(request.app[keys.POOL], job_id, owner=request[keys.CALLER].owner)
    if job is None:
        raise NotFound(f"job {job_id} does not exist", field="job_id")
    return job


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not 1 <= len(key) <= 255:
        raise InvalidField("Idempotency-Key must be 1 to 255 characters", field=IDEMPOTENCY_HEADER)
    return key


def _respond(job: Job, status: int, *, wait_s: int | None = None) -> web.Response:
    body = JobEnvelope(job=JobOut.of(job)).model_dump_json()
    headers = {"Location": f"/jobs/{job.id}", **(waiting.applied(wait_s) if wait_s is not None else {})}
    return web.json_response(text=body, status=status, headers=headers)


async def _finished(request: web.Request, job: Job, wait_s: int | None) -> Job:
    """`job`, or with `Prefer: wait`, the same job once it has finished or the wait is over."""
    if wait_s is None:
        return job

    async def load() -> Job:
        found = await jobs.get_job(request.app[keys.POOL], job.id, owner=request[keys.CALLER].owner)
        if found is None:  # deleted while we waited (retention): what we had is the last word
            return job
        return found

    return await waiting.until_finished(request.app[keys.JOB_WATCH], job.id, load, wait_s)


async def _accept(request: web.Request, fields: dict[str, Any], upload: Upload | None) -> web.Response:
    settings, pool, caller = request.app[keys.SETTINGS], request.app[keys.POOL], request[keys.CALLER]
    idempotency = Idempotency(caller.owner, _idempotency_key(request), settings.idempotency_ttl_s)
    job_request = parse_model(JobCreate, fields)
    caller.require_tier(job_request.tier)
    if upload is not None and job_request.asset_id is not None:
        raise InvalidField("send either asset_id or file, not both", field="asset_id")
    print_ = fingerprint(job_request, file_sha256=upload.sha256 if upload else None)
    wait_s = waiting.preferred_wait(request)  # a bad preference must not leave a job behind
    replay = await find_replay(pool, idempotency, print_)
    if replay is not None:
        return _respond(await _finished(request, replay, wait_s), 202, wait_s=wait_s)
    await request.app[keys.MODERATOR].check(job_request.prompt)
    if job_request.webhook_url is not None:
        await check_target(job_request.webhook_url, allow_private=settings.webhook_allow_private_targets)
    if upload is not None:
        request[keys.ALLOWANCE].require_bytes(upload.size)
        asset = await store_asset(
            pool,
            request.app[keys.UPLOADS],
            upload,
            owner=caller.owner,
            limits=request.app[keys.DECODES],
            job_follows=True,
        )
        job_request = job_request.model_copy(update={"asset_id": asset.id})
    submission = await submit(
        request.app[keys.INTAKE],
        job_request,
        idempotency=idempotency,
        print_=print_,
        fair_share_cap=settings.fair_share_queued,
        api_key_id=caller.key.id,
    )
    return _respond(await _finished(request, submission.job, wait_s), 202, wait_s=wait_s)


async def create_job(request: web.Request) -> web.Response:
    """Accept a job from a multipart form (optionally with the `file` itself) or a JSON body."""
    if request.content_type == "multipart/form-data":
        settings = request.app[keys.SETTINGS]
        form = await read_form(request, max_file_bytes=settings.max_upload_bytes)
        try:
            return await _accept(request, dict(form.fields), form.file)
        finally:
            if form.file is not None:
                form.file.close()
    if request.content_type == "application/json":
        return await _accept(request, await read_json(request), None)
    raise MalformedBody("send multipart/form-data or application/json")


async def get_job(request: web.Request) -> web.Response:
    wait_s = waiting.preferred_wait(request)
    if wait_s is None:
        found, headers = await load_job(request), {}
    else:
        watch = request.app[keys.JOB_WATCH]
        found = await waiting.until_finished(
            watch, path_uuid(request, "job_id"), functools.partial(load_job, request), wait_s
        )
        headers = waiting.applied(wait_s)
    # Where it stands (queue place, ETA, timings): a few small queries the list does without.
    pool = request.app[keys.POOL]
    standing = await progress.progress(pool, found)
    attempts = await deliveries.recent(pool, job_id=found.id) if found.webhook_url else []
    trace_ui_url = request.app[keys.SETTINGS].trace_ui_url
    job = JobOut.of(found, trace_ui_url=trace_ui_url, progress=standing, deliveries=attempts)
    return web.json_response(text=JobEnvelope(job=job).model_dump_json(), headers=headers)


async def list_jobs(request: web.Request) -> web.Response:
    query = parse_model(JobListQuery, dict(request.query))
    page = await jobs.list_jobs(
        request.app[keys.POOL],
        owner=request[keys.CALLER].owner,
        status=query.status,
        tier=query.tier,
        cursor=query.cursor,
        limit=query.limit,
    )
    body = JobPage(jobs=[JobOut.of(job) for job in page.jobs], next_cursor=page.next_cursor)
    return web.json_response(text=body.model_dump_json())


async def get_output(request: web.Request) -> web.StreamResponse:
    job = await load_job(request)
    if job.status is not JobStatus.SUCCEEDED or job.output_key is None:
        raise Conflict(f"job is {job.status.value}; it has no output yet", field="job_id")
    store, content_type = request.app[keys.OUTPUTS], job.output_content_type or "application/octet-stream"
    url = await store.download_url(job.output_key, content_type=content_type)
    if url is not None:  # the store serves the bytes; the link expires, so no cache may keep it
        return web.Response(status=307, headers={"Location": url, "Cache-Control": "no-store"})
    assert isinstance(store, LocalStore)  # the one store without URLs of its own
    return await file_response(request, store.path(job.output_key), content_type)


async def cancel_job(request: web.Request) -> web.Response:
    job = await load_job(request)
    pool, broker, cap = request.app[keys.POOL], request.app[keys.BROKER], request.app[keys.SETTINGS].fair_share_queued
    canceled = await cancellation.cancel_job(pool, broker, job.id, fair_share_cap=cap)
    if canceled is None:
        raise Conflict(f"job is {job.status.value}; only a queued job can be canceled", field="job_id")
    return _respond(canceled, 200)
