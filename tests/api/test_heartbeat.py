"""The api tells the monitor it is alive and what it answered: `api.heartbeat` over the real broker, with
requests by route template and status class and a latency sketch per route; `api.stopped` when it stops."""

from __future__ import annotations

import uuid
from collections import Counter

from services.api.settings import ApiSettings
from shared import sketches
from shared.events import ApiHeartbeat, ApiStopped, EventType
from tests.harness.api import ApiFactory
from tests.harness.broker import EventTap, TapFactory
from tests.harness.poll import poll


async def _heartbeats(tap: EventTap, seen: list[ApiHeartbeat]) -> list[ApiHeartbeat]:
    for event in await tap.events():
        payload = event.payload()
        if isinstance(payload, ApiHeartbeat):
            seen.append(payload)
    return seen


def _answered(beats: list[ApiHeartbeat]) -> dict[str, Counter[str]]:
    totals: dict[str, Counter[str]] = {}
    for beat in beats:
        for route in beat.routes:
            totals.setdefault(route.route, Counter()).update(route.statuses)
    return totals


async def test_heartbeats_carry_the_traffic_by_route_template_and_a_sketch_of_its_latency(
    api_factory: ApiFactory, api_settings: ApiSettings, tap: TapFactory
) -> None:
    api = await api_factory(heartbeat_interval=0.2)  # declares the events exchange the tap binds to
    listening = await tap(EventType.API_HEARTBEAT.value, EventType.API_STOPPED.value)
    for _ in range(3):
        assert (await api.get("/health")).status == 200
    for _ in range(2):  # another owner's or no job: 404, labelled with the route's template
        assert (await api.get(f"/jobs/{uuid.uuid4()}")).status == 404
    assert (await api.get("/no/such/path")).status == 404
    assert (await api.post("/jobs", json={"prompt": "x"})).status == 422

    beats: list[ApiHeartbeat] = []

    async def all_counted() -> bool:
        totals = _answered(await _heartbeats(listening, beats))
        return totals.get("/jobs/{job_id}") == Counter({"4xx": 2}) and "unmatched" in totals

    await poll(all_counted, what="the requests in the api's heartbeats")
    totals = _answered(beats)
    assert totals["/health"] == Counter({"2xx": 3})
    assert totals["unmatched"] == Counter({"4xx": 1})
    assert totals["/jobs"] == Counter({"4xx": 1})
    beat = beats[-1]
    assert beat.interval_s == 0.2 and beat.version == api_settings.app_version
    assert beat.process.rss_bytes > 10 * 1024 * 1024 and beat.process.cpu_seconds > 0
    health = next(route for b in beats for route in b.routes if route.route == "/health")
    latency = sketches.decode(health.latency_sketch)
    median = latency.get_quantile_value(0.5)
    assert latency.count == 3 and median is not None and 0 < median < 1.0
    # Each interval reports its own requests: none is counted twice across heartbeats.
    assert sum(totals["/health"].values()) == 3

    await api.close()
    stops = [event for event in await listening.events() if event.type is EventType.API_STOPPED]
    [stop] = stops
    stopped = stop.payload()
    assert isinstance(stopped, ApiStopped) and stopped.instance_id == beat.instance_id
