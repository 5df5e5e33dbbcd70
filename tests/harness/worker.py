"""Real workers in-process: `services.worker.runner.run` as a task of the test, stopped at teardown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from services.worker.runner import run
from services.worker.settings import WorkerSettings
from shared.domain import Tier
from shared.topology import Topology
from tests.conftest import SettingsFactory
from tests.harness.broker import queue_counts
from tests.harness.poll import poll


class WorkerFactory(Protocol):
    async def __call__(self, *, concurrency: int = 2, **overrides: Any) -> RunningWorker: ...


@dataclass
class RunningWorker:
    """A `run()` task of this test; `stop()` is the SIGTERM path: set the event, await a clean return."""

    settings: WorkerSettings
    stop_event: asyncio.Event
    task: asyncio.Task[None]

    async def stop(self, within: float = 30.0) -> None:
        self.stop_event.set()
        async with asyncio.timeout(within):
            await self.task  # re-raises whatever ended the worker


@pytest.fixture
def worker_settings(settings_for: SettingsFactory) -> WorkerSettings:
    """Heartbeats every 0.2 s, so the monitor's tests see a worker come and go quickly; metrics on a port
    the system picks, so workers of one test (or of tests run side by side) never contend for one."""
    return settings_for(
        WorkerSettings,
        worker_id=f"test-worker-{uuid.uuid4().hex[:6]}",
        heartbeat_interval=0.2,
        shutdown_grace=20,
        metrics_port=0,
    )


async def wait_consuming(connection: AbstractRobustConnection, topology: Topology, task: asyncio.Task[None]) -> None:
    """Wait until the broker reports a consumer on every work queue (or the worker died trying)."""

    async def consuming() -> bool:
        if task.done():
            await task
            pytest.fail("the worker returned before it started consuming")
        try:
            counts = [await queue_counts(connection, topology.work_queue(tier)) for tier in Tier]
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False  # the worker has not declared the topology yet
        return all(consumers >= 1 for _, consumers in counts)

    await poll(consuming, within=20, what="the worker to consume every work queue")


@pytest.fixture
async def worker(
    worker_settings: WorkerSettings, amqp: AbstractRobustConnection, topology: Topology
) -> AsyncIterator[WorkerFactory]:
    """Start workers in-process, each once it consumes every work queue; every one is stopped at teardown."""
    running: list[RunningWorker] = []

    async def start(*, concurrency: int = 2, **overrides: Any) -> RunningWorker:
        settings = worker_settings.model_copy(update={"concurrency": concurrency, **overrides})
        stop = asyncio.Event()
        started = RunningWorker(settings, stop, asyncio.create_task(run(settings, stop)))
        running.append(started)
        await wait_consuming(amqp, topology, started.task)
        return started

    yield start
    for started in running:
        await started.stop()
