"""The PostgreSQL pool and the RabbitMQ connection of an HTTP service: their AppKeys and cleanup contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web

from shared import outbox
from shared.broker import Broker
from shared.db import create_pool
from shared.settings import BaseServiceSettings
from shared.topology import Topology

POOL = web.AppKey("pool", asyncpg.Pool)
BROKER = web.AppKey("broker", Broker)
PUBLISHER = web.AppKey("publisher", outbox.Publisher)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def database(settings: BaseServiceSettings) -> CleanupContext:
    async def pool(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await create_pool(
            str(settings.database_url.get_secret_value()),
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            startup_timeout=settings.startup_timeout,
        )
        yield
        await outbox.settle(app[POOL])
        await app[POOL].close()

    return pool


def broker(settings: BaseServiceSettings, *, name: str) -> CleanupContext:
    async def connection(app: web.Application) -> AsyncIterator[None]:
        app[BROKER] = await Broker.connect(
            str(settings.amqp_url.get_secret_value()),
            Topology(settings.broker_prefix),
            name=name,
            startup_timeout=settings.startup_timeout,
        )
        yield
        await app[BROKER].close()

    return connection


async def publisher(app: web.Application) -> AsyncIterator[None]:
    """What publishes committed messages off the request's path; after `database` and `broker` in the
    cleanup contexts, so that its publishes are settled before the broker closes."""
    app[PUBLISHER] = outbox.Publisher(app[POOL], app[BROKER])
    yield
    await app[PUBLISHER].settle()
