"""Queue depths and consumers: over AMQP, and through the management API when one is configured."""

from __future__ import annotations

from typing import Any

import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from services.monitor import keys
from shared.domain import Tier
from shared.topology import WEBHOOK_RETRY_DELAYS_MS, Topology
from tests.harness.monitor import MonitorFactory, admin_json
from tests.harness.poll import poll

pytestmark = pytest.mark.integration


async def test_every_luster_queue_is_inspected_over_amqp(monitor_factory: MonitorFactory, topology: Topology) -> None:
    monitor = await monitor_factory()
    body = await admin_json(monitor, "/admin/queues")
    queues = {q["name"]: q for q in body["queues"]}
    assert set(queues) == set(topology.all_queues())
    assert body["source"] == "amqp"
    assert queues[topology.monitor_queue]["consumers"] == 1  # the monitor itself
    assert queues[topology.work_queue(Tier.FREE)] | {"messages": 0} == {
        "name": topology.work_queue(Tier.FREE),
        "kind": "work",
        "messages": 0,
        "consumers": 0,
        "unacked": None,
    }
    assert sum(1 for q in queues.values() if q["kind"] == "retry") == 8
    assert queues[topology.webhook_queue]["kind"] == "webhook"
    assert sum(1 for q in queues.values() if q["kind"] == "webhook_retry") == len(WEBHOOK_RETRY_DELAYS_MS)


@pytest.fixture
async def management(aiohttp_server: AiohttpServer, topology: Topology) -> tuple[str, list[str]]:
    """The management plugin's GET /api/queues/{vhost}, as documented (the machine's broker has no plugin)."""
    seen: list[str] = []

    async def queues(request: web.Request) -> web.Response:
        seen.append(f"{request.path_qs} {request.headers.get('Authorization', '')}")
        rows: list[dict[str, Any]] = [
            {"name": topology.work_queue(Tier.FREE), "messages_ready": 7, "messages_unacknowledged": 2, "consumers": 3},
            {"name": "someone-else", "messages_ready": 99, "messages_unacknowledged": 0, "consumers": 0},
        ]
        return web.json_response(rows)

    app = web.Application()
    app.router.add_get("/api/queues/{vhost}", queues)
    server = await aiohttp_server(app)
    return str(server.make_url("")), seen


async def test_the_management_api_when_configured(
    monitor_factory: MonitorFactory, management: tuple[str, list[str]], topology: Topology
) -> None:
    url, seen = management
    monitor = await monitor_factory(rabbitmq_management_url=url.replace("http://", "http://ops:pw@"))
    body = await admin_json(monitor, "/admin/health")
    queues = {q["name"]: q for q in body["queues"]["list"]}
    assert body["queues"]["source"] == "management"
    assert queues[topology.work_queue(Tier.FREE)] == {
        "name": topology.work_queue(Tier.FREE),
        "kind": "work",
        "messages": 7,
        "consumers": 3,
        "unacked": 2,
    }
    assert queues[topology.work_queue(Tier.PREMIUM)]["messages"] is None  # not reported: shown as missing
    assert "someone-else" not in queues
    assert body["queues"]["depth"] == 7
    assert seen[0].startswith("/api/queues/%2F?columns=name")
    assert seen[0].endswith("Basic b3BzOnB3")  # ops:pw


async def test_a_failing_management_api_falls_back_to_amqp(
    monitor_factory: MonitorFactory, aiohttp_server: AiohttpServer
) -> None:
    app = web.Application()
    server = await aiohttp_server(app)  # answers 404 to everything
    monitor = await monitor_factory(rabbitmq_management_url=str(server.make_url("")))
    body = await admin_json(monitor, "/admin/health")
    assert body["queues"]["source"] == "amqp"
    assert body["services"] == {"database": "healthy", "broker": "healthy", "api": "unknown"}


async def test_a_missing_queue_is_reported_without_leaking_channels(
    monitor_factory: MonitorFactory, topology: Topology, amqp: AbstractRobustConnection
) -> None:
    monitor = await monitor_factory()
    channel = await amqp.channel()
    await channel.queue_delete(topology.retry_queue(Tier.FREE, 2))
    await channel.close()
    underlay = monitor.app[keys.BROKER].connection.transport
    assert underlay is not None
    before = len(underlay.connection.channels)  # perhaps with a check's round in flight
    for _ in range(5):
        body = await admin_json(monitor, "/admin/queues")  # one round each, besides the checks every 0.2 s
    queues = {q["name"]: q for q in body["queues"]}
    assert queues[topology.retry_queue(Tier.FREE, 2)]["messages"] is None
    assert queues[topology.retry_queue(Tier.FREE, 3)]["messages"] == 0  # the round went on after the miss

    # Every round closes the channels it opened, the one the miss killed too: between rounds the count
    # comes back to where it was. A leak would only grow, one channel at least per round.
    async def back() -> bool:
        return len(underlay.connection.channels) <= before

    await poll(back, within=10, what=lambda: f"{len(underlay.connection.channels)} channels to be {before} again")
