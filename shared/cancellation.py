"""Canceling a queued job: the api's `DELETE /jobs/{id}` and the monitor's admin cancel do the same thing."""

from __future__ import annotations

import uuid

import asyncpg

from shared import fairshare, jobstate, outbox
from shared.broker import Broker, event_message
from shared.events import JobCanceled, make_event
from shared.jobs import Job
from shared.webhooks import staging as webhooks


async def cancel_job(pool: asyncpg.Pool, broker: Broker, job_id: uuid.UUID, *, fair_share_cap: int) -> Job | None:
    """The canceled job; None, with nothing written, when it was not queued.

    The state change, its job.canceled event and the release of the owner's next held job commit
    together: a cancel that half happened would leave the owner's fair share one short forever.
    """
    async with outbox.transaction(pool, broker) as box:
        canceled = await jobstate.cancel(box.connection, job_id)
        if canceled is None:
            return None
        event = make_event(JobCanceled(tier=canceled.tier), job_id=canceled.id)
        await box.stage(event_message(event, exchange=broker.topology.events_exchange, routing_key=event.type.value))
        await webhooks.announce(box, broker.topology, canceled)
        # Its place in the work queues goes to its owner's next held job (shared/fairshare.py).
        box.publish_after_commit(await fairshare.left_queue(box.connection, canceled, cap=fair_share_cap))
    return canceled
