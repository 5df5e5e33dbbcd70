"""The API's long-lived resources, each owned by one cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from services.api import keys
from shared import outbox
from shared.broker import Broker
from shared.db import create_pool
from shared.storage import LocalStorage
from shared.topology import Topology


async def database(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.POOL] = await create_pool(
        str(settings.database_url),
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        startup_timeout=settings.startup_timeout,
    )
    yield
    await app[keys.POOL].close()


async def broker(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.BROKER] = await Broker.connect(
        str(settings.amqp_url),
        Topology(settings.broker_prefix),
        name="luster-api",
        startup_timeout=settings.startup_timeout,
    )
    yield
    await app[keys.BROKER].close()


async def storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.UPLOADS] = LocalStorage(settings.uploads_dir)
    app[keys.OUTPUTS] = LocalStorage(settings.outputs_dir)
    await asyncio.to_thread(app[keys.UPLOADS].ensure_root)
    yield


async def outbox_relay(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(
        outbox.relay(app[keys.POOL], app[keys.BROKER], interval_s=app[keys.SETTINGS].outbox_relay_interval)
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
