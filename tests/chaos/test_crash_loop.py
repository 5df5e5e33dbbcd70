"""Scenario 15 (beyond the issue's 14): a worker crash-looping on one job, with another job waiting behind it.

RabbitMQ charges a delivery to every unacked message of a consumer whose channel dies, so the message
merely waiting in the crash-looping worker's prefetch nears the quorum queue's delivery limit. Before
services/worker/renewal.py it was dead-lettered while its job was still `queued`, and nothing ran the job
again; now a worn message of a job that has not started is renewed, and both jobs finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from shared.topology import DELIVERY_LIMIT
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.timeout(SIZE.timeout()),
]


async def test_crash_looping_worker_does_not_strand_the_job_behind(chaos: Chaos) -> None:
    """15. (Beyond the issue) a worker crash-looping on one job, with another waiting behind it."""
    # One slot: one job runs and hangs (a photo that crashes or wedges every worker that takes it), the
    # other waits in the worker's prefetch for the slot; the worker is killed and restarted meanwhile.
    await chaos.start(workers=1, worker_env={"LUSTER_FAULTS": "engine_hang:1.0", "CONCURRENCY": "1"})
    chaos.submit(2)
    await chaos.accepted_at_least(2)
    for _ in range(DELIVERY_LIMIT + 1):
        await chaos.until("the worker to hold a job", _holding(chaos), deadline_s=30)
        await asyncio.sleep(0.5)  # and the other one in its prefetch
        chaos.fault("SIGKILL the crash-looping worker")
        chaos.stack.kill("worker-1")
        await asyncio.sleep(0.3)
        await chaos.workers_consuming(1)
    chaos.stack.services["worker-1"].restart = False
    chaos.stack.kill("worker-1")
    chaos.start_workers(1, env={"CONCURRENCY": "1"})
    chaos.fault_over("a healthy worker replaces the crash-looping one")
    await chaos.drain(deadline_s=30)
    dead = await chaos.probe.take_all(chaos.topology.dead_letter_queue)
    chaos.result.notes["dead_letters_reasons"] = [(m.headers or {}).get("x-first-death-reason") for m in dead]
    await chaos.finish()
    chaos.note(f"{DELIVERY_LIMIT + 2} kills; dead letters: {chaos.result.notes['dead_letters_reasons']}")
    chaos.conclude()


def _holding(chaos: Chaos) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        worker = chaos.stack.services["worker-1"].worker_id
        held = await chaos.query("SELECT count(*) FROM jobs WHERE status = 'processing' AND worker_id = $1", worker)
        return int(held) == 1

    return check
