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
    opened = open_stores(app[keys.SETTINGS])
    stores = await opened.__aenter__()
    app[keys.UPLOADS], app[keys.OUTPUTS] = stores.uploads, stores.outputs
    try:
        yield
    finally:
        # Left as a normal exit even when this generator is closed: when a later resource fails at
        # start-up, aiohttp never resumes it, and the garbage collector may close `opened` first;
        # throwing GeneratorExit into a closed generator then fails ("didn't stop after athrow").
        await opened.__aexit__(None, None, None)


async def outbox_relay(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(
        outbox.relay(app[keys.POOL], app[keys.BROKER], interval_s=app[keys.SETTINGS].outbox_relay_interval)
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
