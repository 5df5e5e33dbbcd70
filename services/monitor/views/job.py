"""One job, whoever owns it: its timeline, attempts and trace link; and the operator's cancel and retry."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from pydantic_core import to_jsonable_python

from services.monitor import keys
from shared import cancellation, jobs, queueing
from shared.domain import JobStatus
from shared.errors import Conflict, NotFound
from shared.http.params import path_uuid
from shared.jobs import Job, NewJob
from shared.telemetry.tracing import trace_link
from shared.timings import timings

log = structlog.get_logger()
# Only the api compares it, and it says nothing an operator reads.
HIDDEN = frozenset({"request_fingerprint"})


async def _load(request: web.Request) -> Job:
    job_id = path_uuid(request, "job_id")
    job = await jobs.get_job(request.app[keys.POOL], job_id)  # no owner: an admin sees every job
    if job is None:
        raise NotFound(f"job {job_id} does not exist", field="job_id")
    return job


def _event(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "type": row["type"],
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "details": row["details"] or {},
        "at": row["created_at"],
    }


def _job(job: Job, base: str | None) -> dict[str, Any]:
    fields = {name: value for name, value in dataclasses.asdict(job).items() if name not in HIDDEN}
    return {**fields, "trace_url": trace_link(base, job.trace_id)}


async def detail(request: web.Request) -> web.Response:
    job = await _load(request)
    history = await jobs.history(request.app[keys.POOL], job.id)
    measured = timings(job, history)
    body = {
        "job": _job(job, request.app[keys.SETTINGS].trace_ui_url),
        "timeline": [_event(row) for row in history],
        "timings": measured,
        "actions": {"cancel": job.status is JobStatus.QUEUED, "retry": job.status is JobStatus.FAILED},
    }
    return web.json_response(to_jsonable_python(body))


async def cancel(request: web.Request) -> web.Response:
    """Exactly the owner's own cancel (shared/cancellation.py)."""
    job, settings = await _load(request), request.app[keys.SETTINGS]
    pool, broker = request.app[keys.POOL], request.app[keys.BROKER]
    canceled = await cancellation.cancel_job(pool, broker, job.id, fair_share_cap=settings.fair_share_queued)
    if canceled is None:
        raise Conflict(f"job is {job.status.value}; only a queued job can be canceled", field="job_id")
    log.warning("job.canceled_by_admin", job_id=str(job.id), owner=job.owner)
    return web.json_response(to_jsonable_python({"job": _job(canceled, settings.trace_ui_url)}))


def _retry_key(failed: Job) -> str:
    # A space: no key a client sends can be this one (Idempotency-Key is printable ASCII without spaces).
    return f"retry of {failed.id}"


async def retry(request: web.Request) -> web.Response:
    """A new job with the failed one's request: states only move forward, so the failed job stays failed.

    Once per failed job: a second retry (a double click) answers 200 with the job the first one made.
    """
    failed, settings = await _load(request), request.app[keys.SETTINGS]
    if failed.status is not JobStatus.FAILED:
        raise Conflict(f"job is {failed.status.value}; only a failed job can be retried", field="job_id")
    key, pool = _retry_key(failed), request.app[keys.POOL]
    new = NewJob(
        failed.asset_id,
        failed.prompt,
        failed.tier,
        failed.style,
        failed.owner,
        idempotency_key=key,
        retry_of=failed.id,
        # Its receiver hears of the new job as it would have of the old one, signed with the same key.
        api_key_id=failed.api_key_id,
        webhook_url=failed.webhook_url,
        webhook_events=failed.webhook_events,
    )
    publisher = request.app[keys.PUBLISHER]
    try:
        job, status = await queueing.queue_job(publisher, new, fair_share_cap=settings.fair_share_queued), 201
    except asyncpg.UniqueViolationError:
        job, status = await jobs.find_by_idempotency_key(pool, failed.owner, key, ttl_s=None), 200
    if job is None:  # retention spares an asset a job uses, so only a hand-made deletion gets here
        raise Conflict(f"asset {failed.asset_id} no longer exists; the job cannot be retried", field="asset_id")
    if status == 201:
        log.warning("job.retried_by_admin", job_id=str(failed.id), new_job_id=str(job.id), owner=job.owner)
    body = {"job": _job(job, settings.trace_ui_url), "retry_of": failed.id}
    return web.json_response(to_jsonable_python(body), status=status, headers={"Location": f"/admin/jobs/{job.id}"})
