"""The API's long-lived resources, each owned by one cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from services.api import keys
from shared import outbox
from shared.storage import open_stores


async def storage(app: web.Application) -> AsyncIterator[None]:
    async with open_stores(app[keys.SETTINGS]) as stores:
        app[keys.UPLOADS], app[keys.OUTPUTS] = stores.uploads, stores.outputs
        yield


async def outbox_relay(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(
        outbox.relay(app[keys.POOL], app[keys.BROKER], interval_s=app[keys.SETTINGS].outbox_relay_interval)
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
