"""The monitor's long-lived resources and background tasks, each owned by one cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from services.monitor import keys
from services.monitor.aggregation.replay import rebuild
from services.monitor.alerting.checker import Checker
from services.monitor.alerting.webhook import Webhook
from services.monitor.broker.consumer import EventConsumer
from services.monitor.broker.deadletters import DeadLetterBox
from services.monitor.broker.queues import AmqpQueues, ManagementQueues, Queues
from services.monitor.metrics import MonitorCollector, registry_for

STOP_GRACE_S = 15.0


async def http_client(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as session:
        app[keys.HTTP] = session
        yield


async def events(app: web.Application) -> AsyncIterator[None]:
    """Replay the last hour from PostgreSQL first, then take the live stream (duplicates count once)."""
    await rebuild(app[keys.POOL], app[keys.AGGREGATOR])
    consumer = EventConsumer(app[keys.BROKER], app[keys.AGGREGATOR], app[keys.WORKERS], app[keys.APIS])
    await consumer.start()
    yield
    await consumer.stop()


def _queues(app: web.Application) -> Queues:
    settings, connection = app[keys.SETTINGS], app[keys.BROKER].connection
    amqp = AmqpQueues(connection, app[keys.BROKER].topology)
    if settings.rabbitmq_management_url is None:
        return Queues(amqp)
    management = ManagementQueues(
        app[keys.HTTP],
        str(settings.rabbitmq_management_url.get_secret_value()),
        settings.amqp_url.addresses()[0],  # for the vhost and credentials, the same on every node
        app[keys.BROKER].topology,
    )
    return Queues(amqp, management)


@contextlib.asynccontextmanager
async def _background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _webhook(app: web.Application) -> Webhook | None:
    settings = app[keys.SETTINGS]
    if settings.alert_webhook_url is None:
        return None
    app[keys.WEBHOOK] = Webhook(
        app[keys.HTTP],
        str(settings.alert_webhook_url.get_secret_value()),
        environment=settings.environment,
        timeout=settings.alert_webhook_timeout,
    )
    return app[keys.WEBHOOK]


def _checker(app: web.Application, webhook: Webhook | None) -> Checker:
    return Checker(
        app[keys.SETTINGS],
        pool=app[keys.POOL],
        broker=app[keys.BROKER],
        queues=app[keys.QUEUES],
        aggregator=app[keys.AGGREGATOR],
        workers=app[keys.WORKERS],
        apis=app[keys.APIS],
        alerts=app[keys.ALERTS],
        webhook=webhook,
    )


async def checks(app: web.Application) -> AsyncIterator[None]:
    """The first check runs before the app serves, so /health never answers from nothing."""
    app[keys.QUEUES] = _queues(app)
    app[keys.DEAD_LETTERS] = DeadLetterBox(app[keys.BROKER], peek_limit=app[keys.SETTINGS].dead_letter_peek_limit)
    webhook = _webhook(app)
    checker = app[keys.CHECKER] = _checker(app, webhook)
    collector = MonitorCollector(app[keys.AGGREGATOR], checker, app[keys.ALERTS])
    app[keys.METRICS] = registry_for(collector, app[keys.SETTINGS].app_version)
    await checker.check()
    checking = asyncio.create_task(checker.run())
    async with _background(webhook.run()) if webhook is not None else contextlib.nullcontext():
        yield
        checker.stop()
        # A check's own waits are bounded (DEPENDENCY_TIMEOUT_S each); past that, cancel after all.
        await asyncio.wait_for(checking, timeout=STOP_GRACE_S)
