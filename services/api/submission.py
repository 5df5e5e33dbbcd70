"""Accepting a job: idempotency, the job row and its queued event in one transaction, then the publish."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

import asyncpg
import structlog
from opentelemetry import trace

from services.api.schemas import JobCreate
from shared import jobs, outbox
from shared.broker import Broker, OutgoingMessage, event_message
from shared.errors import Conflict, InvalidField, NotFound
from shared.events import JobQueued, make_event
from shared.jobs import Job, NewJob
from shared.topology import queued_routing_key
from shared.tracing import trace_id_of

log = structlog.get_logger()


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool


def fingerprint(request: JobCreate, *, file_sha256: str | None) -> str:
    """What makes two requests with one Idempotency-Key "the same"."""
    source = {"file_sha256": file_sha256} if file_sha256 else {"asset_id": str(request.asset_id)}
    canonical = json.dumps({**source, "prompt": request.prompt, "tier": request.tier, "style": request.style})
    return hashlib.sha256(canonical.encode()).hexdigest()


async def find_replay(pool: asyncpg.Pool, key: str | None, print_: str) -> Job | None:
    """The job an earlier request with this key created; 409 when that request was different."""
    if key is None:
        return None
    async with pool.acquire() as connection:
        existing = await jobs.find_by_idempotency_key(connection, key)
    if existing is not None and existing.request_fingerprint != print_:
        raise Conflict("Idempotency-Key was already used with a different request", field="Idempotency-Key")
    return existing


def _current_trace_id() -> str | None:
    return trace_id_of(trace.get_current_span())


async def submit(pool: asyncpg.Pool, broker: Broker, request: JobCreate, *, key: str | None, print_: str) -> Submission:
    if request.asset_id is None:
        raise InvalidField("asset_id is required (or send the image as `file`)", field="asset_id")
    new = NewJob(request.asset_id, request.prompt, request.tier, request.style, key, print_, _current_trace_id())
    try:
        job, staged = await _insert(pool, broker, new)
    except asyncpg.UniqueViolationError:
        # Two requests with one key raced; the loser answers with the winner's job.
        replay = await find_replay(pool, key, print_)
        if replay is None:
            raise
        return Submission(replay, created=False)
    await outbox.flush(pool, broker, [staged])
    return Submission(job, created=True)


async def _insert(pool: asyncpg.Pool, broker: Broker, new: NewJob) -> tuple[Job, outbox.Staged]:
    try:
        job_id = uuid.uuid4()
        return await jobs.insert_announced_job(pool, new, job_id=job_id, announce=_queued_message(broker, job_id, new))
    except asyncpg.ForeignKeyViolationError as error:
        raise NotFound(f"asset {new.asset_id} does not exist", field="asset_id") from error


def _queued_message(broker: Broker, job_id: uuid.UUID, new: NewJob) -> OutgoingMessage:
    payload = JobQueued(asset_id=new.asset_id, tier=new.tier, style=new.style, prompt=new.prompt)
    event = make_event(payload, job_id=job_id)
    return event_message(event, exchange=broker.topology.events_exchange, routing_key=queued_routing_key(new.tier))
