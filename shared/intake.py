"""Intake: new jobs submitted together are queued together, their rows written by one statement.

Each submission's job, first history row and announcement are what shared/queueing.py writes for one
job, in one atomic statement; here the submissions under way together (shared/coalescing.py) share that
statement, its round trip and its COMMIT. Each job is still its own: its row only on an asset of its
owner's, held when over its owner's fair share, announced once committed, in its caller's trace.

A job the batch did not write for a reason of its own goes again alone, by the statement that writes one
job (queueing.queue_announced), which answers as it always has: its Idempotency-Key taken
(UniqueViolationError: the caller replays), or no such asset of its owner's (None). When the statement
fails, the server rolled all of it back, and every job goes again alone: one bad job (or a deadlock with
another instance) is nobody else's. A connection lost on the way leaves the outcome unknown: that is
raised to each, as it would be for one job alone.

An owner's jobs in one batch each count against its fair share: the function that decides whether a job
is held takes the owner's lock and counts with a snapshot of its own (it is VOLATILE), which sees the rows
the statement wrote before it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from shared import queueing
from shared.coalescing import Coalescer
from shared.jobs import Job, NewJob
from shared.messages import OutgoingMessage
from shared.outbox import Publisher, Staged, outbox_arguments

PARALLEL_BATCHES = 2
LARGEST_BATCH = 128

# Rows are written in the owners' order ($16), so the fair-share locks two instances' batches share are
# taken in one order. A job's webhook events travel as JSON text: an array of arrays must be rectangular.
_QUEUE_JOBS = """
WITH asked AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::uuid[], $11::text[], $12::text[], $13::uuid[], $14::text[], $15::integer[],
        $16::integer[]
    ) AS asked(id, asset_id, prompt, tier, style, idempotency_key, request_fingerprint, trace_id,
               owner, api_key_id, webhook_url, webhook_events, batch_id, retry_of, fair_share_cap, place)
), job AS (
    -- Another owner's asset is as good as missing: no row, and nothing else written for it.
    INSERT INTO jobs (id, asset_id, prompt, tier, style, status, idempotency_key, request_fingerprint,
                      trace_id, owner, api_key_id, webhook_url, webhook_events, batch_id, held)
    SELECT asked.id, asked.asset_id, asked.prompt, asked.tier, asked.style, 'queued', asked.idempotency_key,
           asked.request_fingerprint, asked.trace_id, asked.owner, asked.api_key_id, asked.webhook_url,
           CASE WHEN asked.webhook_events IS NOT NULL
                THEN ARRAY(SELECT jsonb_array_elements_text(asked.webhook_events::jsonb)) END,
           asked.batch_id, luster_over_fair_share(asked.owner, asked.tier, asked.fair_share_cap)
    FROM asked JOIN assets ON assets.id = asked.asset_id AND assets.owner = asked.owner
    ORDER BY asked.place
    -- Taken: the job goes again alone, and hears so as it would have.
    ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), history AS (
    INSERT INTO job_events (job_id, type, to_status, details)
    SELECT job.id, 'job.queued', job.status,
           jsonb_strip_nulls(jsonb_build_object('tier', job.tier, 'retry_of', asked.retry_of))
    FROM job JOIN asked ON asked.id = job.id
), message AS (
    SELECT * FROM unnest($17::uuid[], $18::text[], $19::text[], $20::text[], $21::bytea[], $22::jsonb[],
                         $23::integer[])
        AS message(job_id, message_id, exchange, routing_key, body, headers, expiration_ms)
), announced AS (
    -- A held job's announcement waits for its release (shared/fairshare.py).
    INSERT INTO outbox (message_id, exchange, routing_key, body, headers, expiration_ms, held_job)
    SELECT message.message_id, message.exchange, message.routing_key, message.body, message.headers,
           message.expiration_ms, CASE WHEN job.held THEN job.id END
    FROM job JOIN message ON message.job_id = job.id
    RETURNING id, message_id
)
SELECT job.*, announced.id AS outbox_id
FROM job JOIN message ON message.job_id = job.id JOIN announced ON announced.message_id = message.message_id
"""


@dataclass(frozen=True)
class _Ask:
    new: NewJob
    job_id: uuid.UUID
    announce: OutgoingMessage
    fair_share_cap: int


class _Alone:
    """The batch did not write this job: it goes again by itself."""


ALONE: Final = _Alone()
Queued = tuple[Job, Staged] | None | _Alone


class Intake:
    """Queues new jobs, those submitted together by one statement; each is announced in its caller's task."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._batches = Coalescer(self._queue_all, parallel=PARALLEL_BATCHES, largest=LARGEST_BATCH)

    async def queue(self, new: NewJob, *, fair_share_cap: int = 0) -> Job | None:
        """What queueing.queue_job answers for `new`: the queued job, committed, its announcement on its way;
        None, with nothing written, when its owner has no such asset. Raises asyncpg.UniqueViolationError
        when the owner's idempotency key is taken."""
        job_id = uuid.uuid4()
        announce = queueing.queued_message(self.publisher.broker, job_id, new)
        queued = await self._batches.ask(_Ask(new, job_id, announce, fair_share_cap))
        if isinstance(queued, _Alone):  # nothing of it was written: the same job, by its own statement
            return await queueing.queue_announced(
                self.publisher, new, job_id=job_id, announce=announce, fair_share_cap=fair_share_cap
            )
        return queueing.announced(self.publisher, queued)

    async def settle(self) -> None:
        await self._batches.settle()

    async def _queue_all(self, asks: Sequence[_Ask]) -> list[Queued]:
        if len(asks) == 1:
            return [ALONE]  # one job's own statement is the cheaper: PostgreSQL plans the batch's every time
        batch = sorted(asks, key=lambda ask: ask.new.owner)
        try:
            records = await self.publisher.pool.fetch(_QUEUE_JOBS, *_parameters(batch))
        except asyncpg.PostgresError:
            return [ALONE] * len(asks)  # the server refused the statement and rolled it back: nothing written
        written = {record["id"]: record for record in records}
        return [_queued(ask, written.get(ask.job_id)) for ask in asks]


def _queued(ask: _Ask, record: asyncpg.Record | None) -> Queued:
    if record is None:  # an owner's idempotency key taken, or no such asset: alone, it hears which
        return ALONE if ask.new.idempotency_key is not None else None
    values = dict(record)
    staged = Staged(values.pop("outbox_id"), ask.announce)
    return Job.from_values(values), staged


def _parameters(batch: Sequence[_Ask]) -> list[list[object]]:
    jobs = [
        (
            ask.job_id,
            ask.new.asset_id,
            ask.new.prompt,
            ask.new.tier.value,
            ask.new.style.value,
            ask.new.idempotency_key,
            ask.new.request_fingerprint,
            ask.new.trace_id,
            ask.new.owner,
            ask.new.api_key_id,
            ask.new.webhook_url,
            None if ask.new.webhook_events is None else json.dumps(ask.new.webhook_events),
            ask.new.batch_id,
            str(ask.new.retry_of) if ask.new.retry_of else None,
            ask.fair_share_cap,
            place,
        )
        for place, ask in enumerate(batch)
    ]
    messages = [(ask.job_id, *outbox_arguments(ask.announce)) for ask in batch]
    return [list(column) for column in (*zip(*jobs, strict=True), *zip(*messages, strict=True))]
