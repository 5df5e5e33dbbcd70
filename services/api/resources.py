"""The API's long-lived resources, each owned by one cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from services.api import keys
from shared import outbox
from shared.storage import LocalStorage


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
