"""Telling the monitor this api instance is alive and what it answered, as the workers tell theirs.

Every `HEARTBEAT_INTERVAL` seconds an `api.heartbeat` carries the interval's traffic (services/api/traffic.py)
and the process's CPU time and memory; on a clean stop, the last interval's and then `api.stopped`. Nothing
is published per request. A heartbeat that cannot be published is logged and its traffic dropped: it is a
sample for the dashboard, not a record anyone bills from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiohttp import web

from services.api import keys
from services.api.traffic import Traffic
from shared.broker import Broker
from shared.events import ApiHeartbeat, ApiStopped, Payload, make_event
from shared.telemetry.tracing import untraced
from shared.telemetry.usage import process_usage

log = structlog.get_logger()
PUBLISH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Instance:
    instance_id: str
    host: str
    version: str
    started_at: datetime
    interval_s: float

    @classmethod
    def this_process(cls, version: str, interval_s: float) -> Instance:
        host = socket.gethostname()
        return cls(f"{host}-{os.getpid()}", host, version, datetime.now(UTC), interval_s)

    def heartbeat(self, traffic: Traffic) -> ApiHeartbeat:
        return ApiHeartbeat(
            instance_id=self.instance_id,
            host=self.host,
            version=self.version,
            started_at=self.started_at,
            interval_s=self.interval_s,
            process=process_usage(),
            routes=traffic.take(),
        )


async def _publish(broker: Broker, payload: Payload) -> None:
    event = make_event(payload)
    try:
        with untraced():  # one every few seconds from every instance: no trace worth keeping
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await broker.publish(event, routing_key=event.type.value)
    except Exception:
        log.warning("heartbeat.failed", event_type=event.type.value, exc_info=True)


async def _beat(broker: Broker, instance: Instance, traffic: Traffic) -> None:
    while True:
        await asyncio.sleep(instance.interval_s)
        await _publish(broker, instance.heartbeat(traffic))


async def heartbeat(app: web.Application) -> AsyncIterator[None]:
    settings, broker, traffic = app[keys.SETTINGS], app[keys.BROKER], app[keys.TRAFFIC]
    instance = Instance.this_process(settings.app_version, settings.heartbeat_interval)
    await _publish(broker, instance.heartbeat(traffic))  # alive from the start, not one interval later
    task = asyncio.create_task(_beat(broker, instance, traffic))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await _publish(broker, instance.heartbeat(traffic))
    await _publish(broker, ApiStopped(instance_id=instance.instance_id, host=instance.host))
