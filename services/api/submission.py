"""Accepting a job: idempotency, then the job row and its queued event (shared/intake.py)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

import asyncpg
from opentelemetry import trace

from services.api.schemas import JobCreate
from shared import idempotency as idempotency_keys
from shared import jobs
from shared.errors import InvalidField, NotFound
from shared.intake import Intake
from shared.jobs import Job, NewJob
from shared.telemetry.tracing import trace_id_of
from shared.webhooks.subscription import event_names


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool


def fingerprint(request: JobCreate, *, file_sha256: str | None) -> str:
    """What makes two requests with one Idempotency-Key "the same"."""
    source = {"file_sha256": file_sha256} if file_sha256 else {"asset_id": str(request.asset_id)}
    # Only a request with a webhook says so: the fingerprints of requests without one stay as they were.
    webhook = {"webhook": [request.webhook_url, request.webhook_events]} if request.webhook_url else {}
    options = {"prompt": request.prompt, "tier": request.tier, "style": request.style, **webhook}
    canonical = json.dumps({**source, **options})
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Idempotency:
    """An owner's Idempotency-Key, and how long it names its job."""

    owner: str
    key: str | None
    ttl_s: float


async def find_replay(pool: asyncpg.Pool, idempotency: Idempotency, print_: str) -> Job | None:
    """The job an earlier request with this key created; 409 when that request was different."""
    if idempotency.key is None:
        return None
    existing = await jobs.find_by_idempotency_key(pool, idempotency.owner, idempotency.key, ttl_s=idempotency.ttl_s)
    if existing is not None:
        idempotency_keys.refuse_different(existing.request_fingerprint, print_)
    return existing


def _current_trace_id() -> str | None:
    return trace_id_of(trace.get_current_span())


async def submit(
    intake: Intake,
    request: JobCreate,
    *,
    idempotency: Idempotency,
    print_: str,
    fair_share_cap: int = 0,
    api_key_id: uuid.UUID | None = None,
) -> Submission:
    if request.asset_id is None:
        raise InvalidField("asset_id is required (or send the image as `file`)", field="asset_id")
    owner, key = idempotency.owner, idempotency.key
    new = NewJob(
        request.asset_id,
        request.prompt,
        request.tier,
        request.style,
        owner,
        key,
        print_,
        _current_trace_id(),
        api_key_id=api_key_id,
        webhook_url=request.webhook_url,
        webhook_events=event_names(request.webhook_events),
    )
    pool = intake.publisher.pool
    if key is not None:
        await jobs.release_expired_idempotency_key(pool, owner, key, ttl_s=idempotency.ttl_s)
    try:
        job = await intake.queue(new, fair_share_cap=fair_share_cap)
    except asyncpg.UniqueViolationError:
        # Two requests with one key raced; the loser answers with the winner's job.
        replay = await find_replay(pool, idempotency, print_)
        if replay is None:
            raise
        return Submission(replay, created=False)
    if job is None:  # no such asset, or another owner's
        raise NotFound(f"asset {new.asset_id} does not exist", field="asset_id")
    return Submission(job, created=True)
