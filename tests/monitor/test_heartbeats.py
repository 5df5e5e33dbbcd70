"""Workers as the monitor sees them: heartbeats plus the broker's consumers; silence and stops drop them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aio_pika.abc import AbstractIncomingMessage

from services.monitor import keys
from shared.broker import Broker
from shared.domain import Tier
from shared.events import WorkerHeartbeat, make_event
from shared.topology import Topology
from tests.conftest import Client
from tests.harness.monitor import JobRunner, MonitorFactory, admin_json
from tests.harness.poll import poll
from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration


@dataclass
class Beats:
    """A fake worker's off switch, and the time its last heartbeat carried (the event's own: the monitor's clock)."""

    silence: asyncio.Event = field(default_factory=asyncio.Event)
    last: float = 0.0


@contextlib.asynccontextmanager
async def fake_worker(amqp_url: str, topology: Topology, *, interval: float) -> AsyncIterator[Beats]:
    """A worker reduced to what the monitor can see: consumers on the work queues, heartbeats until silenced."""
    broker = await Broker.connect(amqp_url, topology, name="fake-worker", startup_timeout=10)
    channel = await broker.connection.channel()

    async def hold(message: AbstractIncomingMessage) -> None:
        await message.nack(requeue=True)

    for tier in Tier:
        await (await channel.get_queue(topology.work_queue(tier), ensure=False)).consume(hold)
    beats, started = Beats(), datetime.now(UTC)

    async def beat() -> None:
        while not beats.silence.is_set():
            event = make_event(
                WorkerHeartbeat(
                    worker_id="fake-1",
                    host="test",
                    started_at=started,
                    in_flight=0,
                    processed=0,
                    failed=0,
                    interval_s=interval,
                )
            )
            await broker.publish(event, routing_key=event.type.value)
            beats.last = event.occurred_at.timestamp()
            await asyncio.sleep(interval)

    beating = asyncio.create_task(beat())
    try:
        yield beats
    finally:
        beats.silence.set()
        await beating
        await broker.close()


async def _active(monitor: Client) -> int:
    body = await (await monitor.get("/health")).json()
    return int(body["workers"]["estimated_active"])


async def test_heartbeat_silence_drops_estimated_active(
    monitor_factory: MonitorFactory, amqp_url: str, topology: Topology
) -> None:
    monitor = await monitor_factory(heartbeat_stale_factor=3)
    async with fake_worker(amqp_url, topology, interval=0.1) as beats:

        async def active() -> bool:
            return await _active(monitor) == 1

        await poll(active, what="the beating worker to count")
        beats.silence.set()

        async def dropped() -> bool:
            return await _active(monitor) == 0

        await poll(dropped, within=5, what="the silent worker to drop out")
        # Counted while its last heartbeat is at most 3 × 0.1 s old (that beat may predate the silence by
        # a whole interval, or more on a busy loop, so the silence itself is no measure), then dropped at
        # the next check, every 0.2 s: not before, and not much later even on a loaded machine.
        silent_for = time.time() - beats.last
        assert 3 * 0.1 <= silent_for < 2.0
        [worker] = (await admin_json(monitor, "/admin/health"))["workers"]["list"]
        assert (worker["worker_id"], worker["status"]) == ("fake-1", "stale")


async def test_a_stopped_worker_drops_out_and_waiting_work_degrades(
    monitor_factory: MonitorFactory, worker: WorkerFactory, run_job: JobRunner
) -> None:
    monitor = await monitor_factory(alert_consecutive_checks=2)
    running = await worker()

    async def one() -> bool:
        return await _active(monitor) == 1

    await poll(one, what="the worker to count")
    await running.stop()

    async def stopped() -> bool:
        workers = (await admin_json(monitor, "/admin/health"))["workers"]
        return bool(workers["estimated_active"] == 0 and workers["list"][0]["status"] == "stopped")

    await poll(stopped, what="worker.stopped to drop the worker")
    job = await run_job(wait=False)

    async def degraded() -> bool:
        body = await admin_json(monitor, "/admin/health")
        return body["status"] == "degraded" and any(a["rule"] == "no_active_worker" for a in body["alerts"]["active"])

    await poll(degraded, what="degraded health and the no-worker alert")
    health = await (await monitor.get("/health")).json()
    assert health["status"] == "degraded" and health["queue"]["depth"] == 1
    assert "1 jobs waiting and no active worker" in (await admin_json(monitor, "/admin/health"))["reasons"]
    assert job["status"] == "queued"


async def test_a_database_outage_is_unhealthy_at_once_and_alerts_after_three_checks(
    monitor_factory: MonitorFactory,
) -> None:
    monitor = await monitor_factory(alert_consecutive_checks=3)
    assert (await monitor.get("/health")).status == 200
    await monitor.app[keys.POOL].close()  # from here on, every check's query fails

    async def alerted() -> bool:
        body = await admin_json(monitor, "/admin/health")
        return any(a["key"] == "dependency_down:database" for a in body["alerts"]["active"])

    await poll(alerted, what="the dependency alert")
    response = await monitor.get("/health")
    body = await response.json()
    assert response.status == 503
    assert body["status"] == "unhealthy" and body["services"] == {
        "database": "unhealthy",
        "broker": "healthy",
        "api": "unknown",
    }
    admin = await admin_json(monitor, "/admin/health")
    assert admin["services"] == {"database": "unhealthy", "broker": "healthy", "api": "unknown"}
    assert "pool is closed" in admin["service_errors"]["database"]
    assert "database unhealthy" in admin["reasons"]
    [fired] = (await admin_json(monitor, "/admin/alerts"))["history"]
    assert fired["summary"] == "database unhealthy on 3 checks in a row"
