"""Staging webhooks with the state change they announce: in its transaction, so at least once.

A worker's start, success and failure and a cancel (api or monitor) call `announce` with the job the
change returned. The message waits in the outbox like the change's own event; the workers send it
(services/worker/webhooks). The last job of a batch to finish also completes the batch, and a batch
with a webhook announces that.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.broker import event_message
from shared.db import Queryable
from shared.domain import TERMINAL_STATUSES
from shared.events import WebhookDelivery, make_event
from shared.jobs import Job
from shared.outbox import Outbox
from shared.topology import Topology
from shared.webhooks.subscription import wanted

BATCH_COMPLETED = "batch.completed"


def job_data(job: Job) -> dict[str, Any]:
    """What a receiver learns of a job: what `GET /jobs/{id}` says of it, less what changes by the second."""
    done = job.output_key is not None
    return {
        "id": str(job.id),
        "status": job.status.value,
        "tier": job.tier.value,
        "style": job.style.value,
        "asset_id": str(job.asset_id),
        "batch_id": str(job.batch_id) if job.batch_id else None,
        "attempts": job.attempts,
        "engine": job.engine,
        "cost": str(job.cost),
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "output_url": f"/jobs/{job.id}/output" if done else None,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
    }


def body(event: str, data: dict[str, Any]) -> str:
    """The Standard Webhooks payload shape: a type, when it happened, and the data."""
    timestamp = datetime.now(UTC).isoformat()
    return json.dumps({"type": event, "timestamp": timestamp, "data": data}, separators=(",", ":"))


async def announce(box: Outbox, topology: Topology, job: Job) -> None:
    """Stage the webhook the job's new status asks for, if any, and complete its batch if it was the last."""
    event = wanted(job.status, job.webhook_url, job.webhook_events)
    if event is not None and job.webhook_url is not None:
        name = f"job.{event.value}"
        await _stage(box, topology, job.id, name, job.webhook_url, body(name, job_data(job)), job.api_key_id)
    if job.batch_id is not None and job.status in TERMINAL_STATUSES:
        await _complete_batch(box, topology, job.batch_id)


async def _complete_batch(box: Outbox, topology: Topology, batch_id: uuid.UUID) -> None:
    """Mark the batch completed once no job of it is left to finish; announce it to its webhook.

    The batch's row lock serialises its last jobs' transactions, so exactly one of them sees none left.
    """
    batch = await box.connection.fetchrow("SELECT * FROM batches WHERE id = $1 FOR UPDATE", batch_id)
    if batch is None or batch["completed_at"] is not None:
        return
    counts = await _finish_if_done(box.connection, batch_id)
    if counts is None or batch["webhook_url"] is None:
        return
    data = {"id": str(batch_id), "total": sum(counts.values()), "counts": counts}
    await _stage(
        box,
        topology,
        None,
        BATCH_COMPLETED,
        batch["webhook_url"],
        body(BATCH_COMPLETED, data),
        batch["api_key_id"],
        batch_id=batch_id,
    )


async def _finish_if_done(connection: Queryable, batch_id: uuid.UUID) -> dict[str, int] | None:
    """The batch's jobs counted by status when none is left to finish (and the batch marked completed)."""
    rows = await connection.fetch(
        "SELECT status, count(*) AS n FROM jobs WHERE batch_id = $1 GROUP BY status", batch_id
    )
    counts = {row["status"]: int(row["n"]) for row in rows}
    if any(status not in TERMINAL_STATUSES for status in counts):
        return None
    # The moment its last job finished, not this transaction's start: two last jobs finishing at once, the
    # one that completes the batch may have begun before the other stamped its own completed_at.
    await connection.execute(
        """
        UPDATE batches SET completed_at = (
            SELECT max(coalesce(completed_at, updated_at)) FROM jobs WHERE batch_id = $1
        ) WHERE id = $1
        """,
        batch_id,
    )
    return counts


async def _stage(
    box: Outbox,
    topology: Topology,
    job_id: uuid.UUID | None,
    event: str,
    url: str,
    text: str,
    api_key_id: uuid.UUID | None,
    *,
    batch_id: uuid.UUID | None = None,
) -> None:
    delivery = WebhookDelivery(
        webhook_id=f"msg_{uuid.uuid4().hex}", event=event, url=url, body=text, api_key_id=api_key_id, batch_id=batch_id
    )
    message = make_event(delivery, job_id=job_id)
    await box.stage(event_message(message, exchange="", routing_key=topology.webhook_queue))
