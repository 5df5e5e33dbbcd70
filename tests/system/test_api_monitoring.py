"""The monitor watches the api as the guide means: a real api process under scripted load, its heartbeats
merged by a real monitor process; 5xx answers fire the HTTP error-rate alert, slow answers the P95 alert,
both resolve once the traffic is healthy again, and stopping the api fires "no api instance"."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import aiohttp

from services.api.faults import HEADER
from tests.harness.poll import poll
from tests.system import processes

ADMIN_PASSWORD = "api-monitoring-admin"
ADMIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
ENV = {
    "LUSTER_API_FAULTS": "on",
    "ADMIN_PASSWORD": ADMIN_PASSWORD,
    "HEARTBEAT_INTERVAL": "0.5",
    "CHECK_INTERVAL": "0.5",
    "ALERT_CONSECUTIVE_CHECKS": "2",
    "ALERT_MIN_SAMPLES": "10",
    "ALERT_LATENCY_P95_SECONDS": "0.4",
}


async def _requests(session: aiohttp.ClientSession, url: str, count: int, fault: str | None = None) -> None:
    headers = {HEADER: fault} if fault else {}

    async def one() -> None:
        async with session.get(f"{url}/health", headers=headers) as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(count)))


async def _overview(session: aiohttp.ClientSession, monitor: processes.Service) -> dict[str, Any]:
    async with session.get(f"{monitor.url}/admin/api/overview", headers=ADMIN) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def _firing(overview: dict[str, Any]) -> set[str]:
    return {alert["rule"] for alert in overview["alerts"]["active"]}


async def test_http_errors_and_slowness_fire_and_resolve_and_a_stopped_api_is_noticed(
    service_env: dict[str, str], log_dir: Path
) -> None:
    env = {**service_env, **ENV}
    api = processes.start("api", env, log_dir, port=processes.free_port())
    monitor = processes.start("monitor", env, log_dir, port=processes.free_port())
    try:
        await processes.wait_healthy(api)
        await processes.wait_healthy(monitor)
        async with aiohttp.ClientSession() as session:

            async def api_seen() -> bool:
                body = await _overview(session, monitor)
                return bool(body["services"]["api"] == "healthy" and body["api"]["active"] == 1)

            await poll(api_seen, what="the monitor to see the api alive", within=30)

            # 40 answers of which 10 are 500s (25 %), and 10 of 40 answered in 0.8 s (P95 well above 0.4 s).
            await _requests(session, api.url, 30)
            await _requests(session, api.url, 10, fault="error")
            await _requests(session, api.url, 10, fault="slow=0.8")

            # The alerts may fire on a heartbeat that has not yet counted the last few slow answers (the
            # share is already over the thresholds), so wait for both: the alerts and every answer counted.
            async def both_fire_with_every_answer_counted() -> dict[str, Any] | None:
                body = await _overview(session, monitor)
                counted = body["api"]["windows"]["5m"]["requests"] >= 50
                return body if counted and {"error_rate", "latency_p95"} <= _firing(body) else None

            fired = await poll(
                both_fire_with_every_answer_counted, what="the HTTP error-rate and P95 alerts to fire", within=30
            )
            assert fired is not None
            five_minutes = fired["api"]["windows"]["5m"]
            assert five_minutes["routes"]["/health"]["server_errors"] == 10
            assert five_minutes["latency"]["p95"] >= 0.7

            async with session.get(f"{monitor.url}/metrics", headers=ADMIN) as response:
                exposition = await response.text()
            assert 'luster_api_error_ratio{kind="server",window="5m"}' in exposition
            assert "luster_api_instances_active 1.0" in exposition
            # The monitor's own process, as every service exposes its own.
            assert 'luster_build_info{service="monitor"' in exposition and "process_resident_memory_bytes" in exposition

            # Healthy traffic brings the 5xx share under 5 % and the P95 under 0.4 s: both resolve.
            await _requests(session, api.url, 400)

            async def both_resolve() -> bool:
                return not {"error_rate", "latency_p95"} & _firing(await _overview(session, monitor))

            await poll(both_resolve, what="the HTTP alerts to resolve", within=30)

            assert api.stop() == 0

            async def api_missed() -> dict[str, Any] | None:
                body = await _overview(session, monitor)
                return body if "no_api_instance" in _firing(body) else None

            missed = await poll(api_missed, what="'no api instance' to fire", within=30)
            assert missed is not None
            assert missed["services"]["api"] == "unhealthy"
            assert [i["status"] for i in missed["api"]["instances"]] == ["stopped"]
    finally:
        codes = {service.name: service.stop() for service in (api, monitor)}
    assert codes == {"api": 0, "monitor": 0}, codes
