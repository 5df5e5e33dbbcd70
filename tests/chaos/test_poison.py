"""Scenario 12: poison messages published straight into the work queues, among real jobs."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from shared.broker import REASON_HEADER
from shared.domain import Style, Tier
from shared.events import JobQueued, JobStarted, make_event
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout())]


def _envelope(**changes: object) -> bytes:
    queued = JobQueued(asset_id=uuid.uuid4(), tier=Tier.FREE, style=Style.DEFAULT, prompt="poison")
    body = json.loads(make_event(queued, job_id=uuid.uuid4()).model_dump_json())
    body.update(changes)
    return json.dumps(body).encode()


def poisons() -> dict[str, bytes]:
    """Every kind of message a work queue must dead-letter, never loop on."""
    started = JobStarted(worker_id="nobody", tier=Tier.FREE, attempt=1, queued_at=datetime.now(UTC))
    queued_data = json.loads(_envelope())["data"]
    return {
        "not json": b"\x00\xff this is not json",
        "json, not an event": b'{"hello": "world"}',
        "unknown type": _envelope(type="job.exploded"),
        "unknown version": _envelope(version=99),
        "payload missing a field": _envelope(data={k: v for k, v in queued_data.items() if k != "tier"}),
        "unknown job": _envelope(),
        "not a job.queued": make_event(started, job_id=uuid.uuid4()).model_dump_json().encode(),
    }


async def test_poison_messages(chaos: Chaos, jobs: int) -> None:
    """12. Poison messages published straight into the work queues."""
    await chaos.start(workers=2)
    chaos.submit(jobs, over_s=chaos.size.scaled(4, 20))
    await chaos.finished_at_least(jobs // 4)
    published: dict[str, str] = {}
    for round_ in range(max(1, jobs // 25)):
        for tier in Tier:
            for name, body in poisons().items():
                message_id = f"poison-{round_}-{tier}-{name.replace(' ', '-').replace(',', '')}"
                await chaos.probe.publish_raw(chaos.topology.work_queue(tier), body, message_id=message_id)
                published[message_id] = name
    chaos.fault_over("poison published")
    await chaos.drain()
    dead = await chaos.probe.take_all(chaos.topology.dead_letter_queue)
    await chaos.finish()
    seen = Counter(message.message_id or "" for message in dead)
    reasons = {message.message_id or "": (message.headers or {}).get(REASON_HEADER) for message in dead}
    chaos.expect(set(seen) == set(published), f"dead letters {sorted(seen)} != published {sorted(published)}")
    chaos.expect(all(n == 1 for n in seen.values()), f"dead-lettered more than once: {seen.most_common(3)}")
    chaos.expect(all(reasons.values()), f"dead letters without {REASON_HEADER}: {reasons}")
    # One reason per kind of poison: what an operator sees on the dead-letter queue.
    chaos.result.notes["reasons"] = {published.get(key, key): reason for key, reason in sorted(reasons.items())}
    chaos.note(f"{len(published)} poison messages, {len(dead)} dead-lettered with a reason")
    chaos.conclude()
