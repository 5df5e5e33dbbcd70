"""A monitor started on an hour of history rebuilds it from PostgreSQL, and /metrics exposes it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from shared.domain import Style, Tier
from shared.events import JobQueued, JobSucceeded, make_event
from shared.topology import Topology
from tests.harness.monitor import ADMIN, MonitorFactory, admin_json
from tests.harness.poll import poll
from tests.monitor.seed import publish, seed_hour

pytestmark = pytest.mark.integration


async def test_the_last_hour_is_rebuilt_with_its_percentiles(
    pool: asyncpg.Pool, monitor_factory: MonitorFactory
) -> None:
    await seed_hour(pool)
    monitor = await monitor_factory()
    body = await admin_json(monitor, "/admin/health")
    hour = body["windows"]["1h"]
    assert body["jobs"] == {"queued": 0, "processing": 0, "succeeded": 54, "failed": 6, "canceled": 0}
    assert (hour["queued"], hour["started"], hour["succeeded"], hour["failed"]) == (60, 60, 54, 6)
    assert hour["failure_rate"] == 0.1
    assert hour["errors_by_code"] == {"engine_timeout": 6}
    wait, processing = hour["latency"]["queue_wait"]["all"], hour["latency"]["processing"]["all"]
    assert (wait["count"], processing["count"]) == (60, 60)
    assert [wait["p50"], wait["p95"], wait["p99"]] == pytest.approx([3.0, 5.7, 5.9], rel=0.015)
    assert [processing["p50"], processing["p95"], processing["p99"]] == pytest.approx([30, 57, 59], rel=0.015)
    assert hour["latency"]["processing"]["premium"]["count"] == 20
    overview = await admin_json(monitor, "/admin/api/overview")
    assert len(overview["series"]) == 60
    assert sum(point["succeeded"] for point in overview["series"]) == 54


async def test_replayed_steps_are_not_counted_again_when_their_events_arrive(
    pool: asyncpg.Pool, monitor_factory: MonitorFactory, amqp_url: str, topology: Topology
) -> None:
    seeded = await seed_hour(pool)
    monitor = await monitor_factory()
    job = seeded[0]  # an outbox relay may publish an event again after its job was already replayed
    duplicate = make_event(
        JobSucceeded(
            worker_id="seed",
            tier=Tier(job.tier),
            attempt=1,
            output_key="k",
            width=1,
            height=1,
            cost=0,
            engine="local",
            processing_ms=1.0,
            queued_at=job.created_at,
        ),
        job_id=job.id,
    )
    fresh = make_event(
        JobQueued(asset_id=uuid.uuid4(), tier=Tier.FREE, style=Style.DEFAULT, prompt="p"), job_id=uuid.uuid4()
    )
    await publish(amqp_url, topology, duplicate, fresh)

    async def fresh_counted() -> bool:
        return bool((await admin_json(monitor, "/admin/health"))["windows"]["1h"]["queued"] == 61)

    await poll(fresh_counted, what="the fresh event")
    assert (await admin_json(monitor, "/admin/health"))["windows"]["1h"]["succeeded"] == 54


async def test_metrics_in_prometheus_text_format(
    pool: asyncpg.Pool, monitor_factory: MonitorFactory, amqp_url: str, topology: Topology
) -> None:
    await seed_hour(pool)
    monitor = await monitor_factory()
    job_id, queued_at = uuid.uuid4(), datetime.now(UTC)
    await publish(
        amqp_url,
        topology,
        make_event(
            JobSucceeded(
                worker_id="w",
                tier=Tier.PREMIUM,
                attempt=1,
                output_key="k",
                width=1,
                height=1,
                cost=0,
                engine="local",
                processing_ms=4200.0,
                queued_at=queued_at,
            ),
            job_id=job_id,
        ),
    )

    async def scraped() -> str:
        response = await monitor.get("/metrics", headers=ADMIN)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return await response.text()

    async def counted() -> bool:
        return 'luster_job_events_total{event="succeeded",tier="premium"} 1.0' in await scraped()

    await poll(counted, what="the live event in /metrics")
    text = await scraped()
    assert 'luster_jobs{status="succeeded",tier="free"} 36.0' in text  # from PostgreSQL
    assert 'luster_job_processing_seconds_bucket{le="5.0",tier="premium"} 1.0' in text
    assert 'luster_job_processing_seconds_bucket{le="2.5",tier="premium"} 0.0' in text
    assert 'luster_job_end_to_end_seconds_bucket{le="1800.0",tier="premium"} 1.0' in text
    assert 'luster_job_processing_seconds_count{tier="premium"} 1.0' in text
    assert f'luster_queue_messages{{kind="work",queue="{topology.work_queue(Tier.FREE)}"}} 0.0' in text
    assert f'luster_queue_consumers{{kind="monitor",queue="{topology.monitor_queue}"}} 1.0' in text
    assert "luster_workers_active 0.0" in text
    assert 'luster_dependency_up{dependency="database"} 1.0' in text
    assert 'luster_alerts_firing{rule="queue_depth"} 0.0' in text
    assert "luster_sentry_spans_month_estimate" in text
