"""Scenarios 5-6: RabbitMQ stopped under an ingest load, and restarted while workers consume.

Both stop the shared broker, so each holds the chaos lock (servers.exclusive) for its whole run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from tests.chaos import servers
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout() + 900)]

Exclusive = Callable[[], AbstractAsyncContextManager[None]]
WATCHDOG_EXIT = 1  # a worker whose consumers did not come back exits non-zero for its platform to restart it


async def _broker_outage(chaos: Chaos, outage_s: float) -> None:
    chaos.fault("rabbitmqctl stop_app")
    await servers.stop_rabbitmq()
    await asyncio.sleep(outage_s)
    await servers.start_rabbitmq()
    chaos.fault_over("rabbitmqctl start_app")


async def _consumers_come_back(chaos: Chaos) -> None:
    """The broker's own consumer counts: every worker on every work queue, the monitor on its queue."""
    started = time.monotonic()
    try:
        await chaos.workers_consuming(len(chaos.workers), deadline_s=120)
        await chaos.until("the monitor's consumer", chaos.monitor_consuming, deadline_s=60)
    except AssertionError as error:
        chaos.expect(False, f"consumers did not come back: {error}")
        return
    chaos.note(f"consumers back {time.monotonic() - started:.1f} s after start_app")


async def test_rabbitmq_stopped_during_post_load(chaos: Chaos, jobs: int, exclusive: Exclusive) -> None:
    """5. RabbitMQ stopped during a POST /jobs load, then started."""
    chaos.expected_exit_codes.add(WATCHDOG_EXIT)
    async with exclusive():
        await chaos.start(workers=2)
        chaos.submit(jobs, over_s=chaos.size.scaled(12, 40))
        await chaos.accepted_at_least(jobs // 4)
        before = len(chaos.client.ledger.accepted)
        await _broker_outage(chaos, chaos.size.scaled(5, 15))
        during = len(chaos.client.ledger.accepted) - before
        await _consumers_come_back(chaos)
        await chaos.drain()
    await chaos.finish()
    chaos.expect(during > 0, "no job was submitted while the broker was down")
    chaos.note(f"{during} accepted during the outage, {chaos.client.ledger.count('503')} answered 503")
    chaos.conclude()


async def test_rabbitmq_restarted_while_workers_consume(chaos: Chaos, jobs: int, exclusive: Exclusive) -> None:
    """6. RabbitMQ restarted while workers consume."""
    chaos.expected_exit_codes.add(WATCHDOG_EXIT)
    async with exclusive():
        await chaos.start(workers=2)
        chaos.submit(jobs)
        await chaos.finished_at_least(jobs // 4)
        in_flight = await chaos.query("SELECT count(*) FROM jobs WHERE status = 'processing'")
        await _broker_outage(chaos, 3.0)
        await _consumers_come_back(chaos)
        await chaos.drain()
    await chaos.finish()
    chaos.note(f"{in_flight} jobs processing at the stop, {await chaos.takeovers()} takeovers")
    chaos.conclude()
