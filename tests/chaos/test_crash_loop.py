"""Scenario 15 (beyond the issue's 14): a worker crash-looping on one job, with another job waiting behind it.

RabbitMQ charges a delivery to every unacked message of a consumer whose channel dies, so the message
merely waiting in the crash-looping worker's prefetch nears the quorum queue's delivery limit. Before
services/worker/renewal.py it was dead-lettered while its job was still `queued`, and nothing ran the job
again; now a worn message of a job that has not started is renewed, and both jobs finish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from shared.domain import Tier
from shared.topology import DELIVERY_LIMIT
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE

HEARTBEAT_S = 5  # the liveness window is three heartbeats: 15 s

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.timeout(SIZE.timeout()),
]


async def test_crash_looping_worker_does_not_strand_the_job_behind(chaos: Chaos) -> None:
    """15. (Beyond the issue) a worker crash-looping on one job, with another waiting behind it."""
    # One slot: one job runs and hangs (a photo that crashes or wedges every worker that takes it), the
    # other waits in the worker's prefetch for the slot; the worker is killed and restarted meanwhile.
    # The jobs are in different tiers' queues, so both reach the worker at once (one prefetch each), in
    # either order. The dead incarnations stay within the liveness window while the loop runs: otherwise
    # the sweeper, seeing a job still held by a dead one, re-queues a copy that no prefetch can take, and
    # the loop waits on it until the jobs time out (a loaded machine restarts a worker slowly).
    await chaos.start(
        workers=1,
        worker_env={"LUSTER_FAULTS": "engine_hang:1.0", "CONCURRENCY": "1", "HEARTBEAT_INTERVAL": str(HEARTBEAT_S)},
    )
    chaos.submit(2)
    await chaos.accepted_at_least(2)
    looping = chaos.stack.services["worker-1"]
    for _ in range(DELIVERY_LIMIT + 1):
        await chaos.until("the worker to hold a job", _holding(chaos), deadline_s=30)
        # Each kill must charge the waiting job's message a delivery too: it has left the queue for the prefetch.
        await chaos.until("the other job's message in the worker's prefetch", _all_delivered(chaos), deadline_s=30)
        chaos.fault("SIGKILL the crash-looping worker")
        killed = looping.incarnation
        chaos.stack.kill("worker-1")
        # The next incarnation, not the dead one whose job row still says `processing`, is the one to hold a job.
        await chaos.until("the worker restarted", _restarted(chaos, killed), deadline_s=30)
        await chaos.workers_consuming(1)
    chaos.stack.services["worker-1"].restart = False
    chaos.stack.kill("worker-1")
    chaos.start_workers(1, env={"CONCURRENCY": "1"})
    chaos.fault_over("a healthy worker replaces the crash-looping one")
    # The hanging job's worn message was dead-lettered; the sweeper settles its job once the last
    # incarnation's liveness window has passed.
    await chaos.drain(deadline_s=3 * HEARTBEAT_S + 30)
    dead = await chaos.probe.take_all(chaos.topology.dead_letter_queue)
    chaos.result.notes["dead_letters_reasons"] = [(m.headers or {}).get("x-first-death-reason") for m in dead]
    await chaos.finish()
    chaos.note(f"{DELIVERY_LIMIT + 2} kills; dead letters: {chaos.result.notes['dead_letters_reasons']}")
    chaos.conclude()


def _all_delivered(chaos: Chaos) -> Callable[[], Awaitable[bool]]:
    """No job's message waits in a work queue or the outbox: with one consumer, both are in its hands."""

    async def check() -> bool:
        states = await chaos.probe.try_states([chaos.topology.work_queue(tier) for tier in Tier])
        unpublished = await chaos.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return states is not None and not any(state.messages for state in states) and not unpublished

    return check


def _restarted(chaos: Chaos, killed: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return chaos.stack.services["worker-1"].incarnation > killed

    return check


def _holding(chaos: Chaos) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        worker = chaos.stack.services["worker-1"].worker_id
        held = await chaos.query("SELECT count(*) FROM jobs WHERE status = 'processing' AND worker_id = $1", worker)
        return int(held) == 1

    return check
