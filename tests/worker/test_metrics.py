"""The worker's /metrics on METRICS_PORT: build info, the process collector, and engine and job metrics
that move as jobs run, on the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import socket
from decimal import Decimal
from typing import TYPE_CHECKING

import aiohttp
import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr

from services.worker import metrics
from services.worker.settings import WorkerSettings
from shared.errors import TransientEngineError
from tests.harness.scrape import value
from tests.worker.test_pipeline import ScriptedEngine, consuming

if TYPE_CHECKING:
    from tests.harness.api import JobWaiter, Submitter, Uploader
    from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def scrape(port: int, **headers: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r,
    ):
        return r.status, await r.text()


async def test_the_worker_serves_its_metrics_and_they_move_with_a_job(
    upload: Uploader, submit: Submitter, wait_for_job: JobWaiter, worker: WorkerFactory
) -> None:
    port = free_port()
    running = await worker(metrics_port=port)
    status, before = await scrape(port)
    assert status == 200
    assert value(before, "luster_build_info", service="worker", version=running.settings.app_version) == 1
    assert value(before, "process_resident_memory_bytes") > 0
    assert value(before, "python_info") == 1
    assert value(before, "luster_jobs_processed_total") == 0

    job = await submit((await upload())["id"], tier="free")
    assert (await wait_for_job(job["id"]))["status"] == "succeeded"

    _, after = await scrape(port)
    assert value(after, "luster_jobs_processed_total", outcome="succeeded", tier="free") == 1
    assert value(after, "luster_engine_duration_seconds_count", engine="local", tier="free") == 1
    assert value(after, "luster_engine_duration_seconds_sum", engine="local", tier="free") > 0
    # The local engine bills nothing, and says so: the series exists at 0.
    assert "luster_engine_cost_usd_total" in after
    assert value(after, "luster_engine_cost_usd_total", engine="local", tier="free") == 0


async def test_a_scrape_needs_the_token_when_one_is_set(worker: WorkerFactory) -> None:
    port = free_port()
    await worker(metrics_port=port, metrics_token=SecretStr("worker-metrics-token"))

    assert (await scrape(port))[0] == 401
    assert (await scrape(port, Authorization="Bearer wrong"))[0] == 401
    status, text = await scrape(port, Authorization="Bearer worker-metrics-token")
    assert status == 200
    assert value(text, "luster_build_info", service="worker") == 1


async def test_a_port_in_use_leaves_the_worker_working_without_metrics(
    upload: Uploader, submit: Submitter, wait_for_job: JobWaiter, worker: WorkerFactory
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        await worker(metrics_port=taken.getsockname()[1])

        job = await submit((await upload())["id"], tier="free")
        assert (await wait_for_job(job["id"]))["status"] == "succeeded"


async def test_retries_and_their_cost_are_counted(
    upload: Uploader, submit: Submitter, wait_for_job: JobWaiter, worker_settings: WorkerSettings
) -> None:
    job = await submit((await upload())["id"], tier="premium")
    engine = ScriptedEngine(TransientEngineError("upstream said 503", code="engine_unavailable", cost=Decimal("0.01")))

    async with consuming(worker_settings, engine) as ctx:
        assert (await wait_for_job(job["id"], within=30))["status"] == "succeeded"
        text = generate_latest(ctx.metrics.registry).decode()

    assert value(text, "luster_jobs_processed_total", outcome="retried", tier="premium") == 1
    assert value(text, "luster_jobs_processed_total", outcome="succeeded", tier="premium") == 1
    # The failed attempt is the configured engine's, the one that answered is labelled by its own name.
    assert value(text, "luster_engine_cost_usd_total", engine="local", tier="premium") == pytest.approx(0.01)
    assert value(text, "luster_engine_cost_usd_total", engine="scripted", tier="premium") == pytest.approx(0.02)
    assert value(text, "luster_engine_duration_seconds_count", tier="premium") == 2


def test_the_worker_metrics_follow_prometheus_naming() -> None:
    """Units in the names, counters ending in _total."""
    exposed = generate_latest(metrics.WorkerMetrics.create("test").registry).decode()
    for declared in (
        "# TYPE luster_engine_duration_seconds histogram",
        "# TYPE luster_engine_cost_usd_total counter",
        "# TYPE luster_jobs_processed_total counter",
        "# TYPE luster_build_info gauge",
    ):
        assert declared in exposed
