"""Renewing a waiting job's message before the queue's delivery limit dead-letters it.

RabbitMQ charges a delivery to every unacked message of a consumer whose channel dies, including
messages only waiting in a worker's prefetch for a free slot. A worker crash-looping on one job
would push the job queued behind it over the quorum queue's delivery limit: dead-lettered while its
job is still `queued`, a job nobody would ever run. So a message close to the limit whose job has
not started yet is published afresh (its delivery count starts again) and the worn copy acked.
A job that is `processing` keeps its worn message: that one may be the poison, and the limit is
what stops it; the sweeper re-queues or fails the job itself.
"""

from __future__ import annotations

import uuid

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.worker.context import WorkerContext
from shared import jobs
from shared.domain import JobStatus
from shared.events import UndecodableEvent, decode
from shared.messages import OutgoingMessage
from shared.topology import DELIVERY_LIMIT

log = structlog.get_logger()

DELIVERY_COUNT_HEADER = "x-delivery-count"
# The delivery count at which a waiting job's message is renewed: one redelivery before the limit.
RENEW_AT = DELIVERY_LIMIT - 1


def delivery_count(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(DELIVERY_COUNT_HEADER, 0)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


async def _waiting_job(ctx: WorkerContext, message: AbstractIncomingMessage) -> uuid.UUID | None:
    try:
        event, _ = decode(message.body)
    except UndecodableEvent:
        return None  # the normal path dead-letters it with the reason
    if event.job_id is None:
        return None
    job = await jobs.get_job(ctx.pool, event.job_id)
    return job.id if job is not None and job.status is JobStatus.QUEUED else None


async def renew_if_worn(ctx: WorkerContext, message: AbstractIncomingMessage, queue: str) -> bool:
    """True when the message was replaced by a fresh copy (and acked): the caller drops it."""
    if delivery_count(message) < RENEW_AT:
        return False
    job_id = await _waiting_job(ctx, message)
    if job_id is None:
        return False
    headers = {k: v for k, v in (message.headers or {}).items() if k != DELIVERY_COUNT_HEADER}
    fresh = OutgoingMessage(
        exchange="", routing_key=queue, body=message.body, message_id=message.message_id or "", headers=headers
    )
    # Publish (confirmed) before the ack: a crash in between leaves two copies, which the idempotent
    # claim turns into one run, never zero.
    await ctx.broker.publish_raw(fresh)
    await message.ack()
    log.warning("job.message_renewed", job_id=str(job_id), delivery_count=delivery_count(message))
    return True
