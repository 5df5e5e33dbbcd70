"""The API's long-lived resources, each owned by one cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator

from aiohttp import web

from services.api import keys
from services.api.keycounter import KeyCounter
from services.api.moderation import moderator_for
from services.api.uploads import DecodeLimits
from shared import batchwatch, fairshare, outbox
from shared.intake import Intake
from shared.jobwatch import JobWatch
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


async def image_checks(app: web.Application) -> AsyncIterator[None]:
    """The threads that check uploaded images (services/api/uploads.py)."""
    app[keys.DECODES] = DecodeLimits.of(app[keys.SETTINGS])
    yield
    app[keys.DECODES].close()


async def outbox_relay(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    release = functools.partial(fairshare.release_with_room, cap=settings.fair_share_queued)
    task = asyncio.create_task(
        outbox.relay(app[keys.POOL], app[keys.BROKER], interval_s=settings.outbox_relay_interval, release=release)
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def key_counter(app: web.Application) -> AsyncIterator[None]:
    """What authenticates and counts the limited requests, many a statement (services/api/keycounter.py)."""
    app[keys.KEY_COUNTER] = KeyCounter(app[keys.POOL], app[keys.SETTINGS])
    yield
    await app[keys.KEY_COUNTER].settle()


async def intake(app: web.Application) -> AsyncIterator[None]:
    """What queues new jobs, those submitted together by one statement (shared/intake.py)."""
    app[keys.INTAKE] = Intake(app[keys.PUBLISHER])
    yield
    await app[keys.INTAKE].settle()


async def moderation(app: web.Application) -> AsyncIterator[None]:
    app[keys.MODERATOR] = moderator_for(app[keys.SETTINGS])
    yield
    await app[keys.MODERATOR].aclose()


async def job_watch(app: web.Application) -> AsyncIterator[None]:
    """The LISTEN connection that ends `Prefer: wait` when a job finishes (services/api/waiting.py)."""
    watch = JobWatch(str(app[keys.SETTINGS].database_url.get_secret_value()))
    await watch.start()
    app[keys.JOB_WATCH] = watch
    yield
    await watch.close()


async def batch_watch(app: web.Application) -> AsyncIterator[None]:
    """The LISTEN connection that every batch's event stream follows (services/api/views/batches.py)."""
    watch = batchwatch.batch_watch(str(app[keys.SETTINGS].database_url.get_secret_value()))
    await watch.start()
    app[keys.BATCH_WATCH] = watch
    yield
    await watch.close()


async def end_streams(app: web.Application) -> None:
    """On shutdown, before the server waits for open requests: event streams end now, not at its timeout."""
    if keys.BATCH_WATCH in app:
        app[keys.BATCH_WATCH].release()
