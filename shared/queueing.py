"""Queueing a new job: its row, first history row and job.queued announcement written in one statement,
then published off the caller's path, unless the job is held over its owner's fair share (its release
publishes it then). A job is accepted once it is committed: the outbox makes its announcement certain.

The api's submissions and the monitor's retries both go through here.
"""

from __future__ import annotations

import uuid

from shared import jobs
from shared.broker import Broker, event_message
from shared.events import JobQueued, make_event
from shared.jobs import Job, NewJob
from shared.messages import OutgoingMessage
from shared.outbox import Publisher, Staged
from shared.topology import queued_routing_key


def queued_message(broker: Broker, job_id: uuid.UUID, new: NewJob) -> OutgoingMessage:
    payload = JobQueued(asset_id=new.asset_id, tier=new.tier, style=new.style, prompt=new.prompt)
    event = make_event(payload, job_id=job_id)
    return event_message(event, exchange=broker.topology.events_exchange, routing_key=queued_routing_key(new.tier))


async def queue_job(publisher: Publisher, new: NewJob, *, fair_share_cap: int = 0) -> Job | None:
    """The queued job, committed; its announcement is on its way (`publisher`), or with the relay.
    None, with nothing written, when its owner has no such asset.

    Raises asyncpg.UniqueViolationError when the owner's idempotency key is taken (the caller decides
    whose job that is).
    """
    job_id = uuid.uuid4()
    announce = queued_message(publisher.broker, job_id, new)
    return await queue_announced(publisher, new, job_id=job_id, announce=announce, fair_share_cap=fair_share_cap)


async def queue_announced(
    publisher: Publisher, new: NewJob, *, job_id: uuid.UUID, announce: OutgoingMessage, fair_share_cap: int = 0
) -> Job | None:
    """`queue_job` for a job whose id and announcement are already made (the intake's, going again alone)."""
    inserted = await jobs.insert_announced_job(
        publisher.pool, new, job_id=job_id, announce=announce, fair_share_cap=fair_share_cap
    )
    return announced(publisher, inserted)


def announced(publisher: Publisher, inserted: tuple[Job, Staged] | None) -> Job | None:
    """The job just written, its announcement on its way unless the job is held (its release publishes it)."""
    if inserted is None:
        return None
    job, staged = inserted
    if not job.held:
        publisher.publish([staged])
    return job
