"""Consuming staged webhooks: sign and send each, record the attempt, retry through the delay queues.

A delivery is acked only once its attempt is recorded and, when it failed, its next attempt is safely
in a delay queue; a worker killed in between sends it again (the same `webhook-id`, for the receiver
to drop). After the last attempt it is dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue

from services.worker.context import WorkerContext
from services.worker.transitions import backoff_ms
from services.worker.webhooks.sender import Attempt, AttemptOutcome, WebhookSender
from shared.broker import Delivery, consume, event_message
from shared.errors import PoisonMessage
from shared.events import WebhookDelivery, make_event
from shared.topology import WEBHOOK_RETRY_DELAYS_MS
from shared.webhooks.secrets import signing_secret

log = structlog.get_logger()

SECRET_CACHE_S = 60.0  # a rotated secret signs within a minute; until then, one query per key a minute


class WebhookConsumer:
    """Owns the webhook queue's channel and the HTTP session; `stop` lets sends in flight finish."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.sender = WebhookSender(
            timeout_s=settings.webhook_timeout, allow_private=settings.webhook_allow_private_targets
        )
        self._secrets: dict[uuid.UUID, tuple[float, str | None]] = {}
        self._consumer: tuple[AbstractChannel, AbstractQueue, str] | None = None
        self._active: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        channel = await self.ctx.broker.connection.channel()
        await channel.set_qos(prefetch_count=self.ctx.settings.webhook_concurrency)
        queue, tag = await consume(self.ctx.broker, channel, self.ctx.broker.topology.webhook_queue, self._tracked)
        self._consumer = (channel, queue, tag)

    async def stop(self, grace: float) -> None:
        if self._consumer is not None:
            channel, queue, tag = self._consumer
            await queue.cancel(tag)
            if self._active:
                await asyncio.wait(set(self._active), timeout=grace)  # the rest go back to the queue
            await channel.close()
        await self.sender.close()

    async def _tracked(self, delivery: Delivery) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._active.add(task)
        try:
            await self.handle(delivery)
        finally:
            self._active.discard(task)

    async def handle(self, delivery: Delivery) -> None:
        webhook = delivery.payload
        if not isinstance(webhook, WebhookDelivery):
            raise PoisonMessage(f"{delivery.event.type} is not a webhook delivery")
        secret = await self._secret(webhook.api_key_id)
        if secret is None:
            raise PoisonMessage(f"no signing key for webhook {webhook.webhook_id}: the job's API key is gone")
        with structlog.contextvars.bound_contextvars(webhook_id=webhook.webhook_id, attempt=webhook.attempt):
            attempt = await self.sender.send(webhook, secret)
            await record(self.ctx.pool, delivery.event.job_id, webhook, attempt)
            log.info("webhook.attempted", outcome=attempt.outcome.value, status=attempt.response_status)
            await self._after(delivery, webhook, attempt)

    async def _after(self, delivery: Delivery, webhook: WebhookDelivery, attempt: Attempt) -> None:
        if attempt.outcome is AttemptOutcome.REFUSED:
            raise PoisonMessage(f"webhook {webhook.url} refused: {attempt.error}")
        if attempt.outcome is not AttemptOutcome.FAILED:
            return
        what = attempt.error or f"HTTP {attempt.response_status}"
        if webhook.attempt >= self.ctx.settings.webhook_max_attempts:
            raise PoisonMessage(f"webhook not delivered after {webhook.attempt} attempts; last: {what}")
        await self._retry_later(delivery, webhook)

    async def _retry_later(self, delivery: Delivery, webhook: WebhookDelivery) -> None:
        topology = self.ctx.broker.topology
        level = min(webhook.attempt - 1, len(WEBHOOK_RETRY_DELAYS_MS) - 1)
        delay = backoff_ms(level, scale=self.ctx.settings.retry_delay_scale, ladder=WEBHOOK_RETRY_DELAYS_MS)
        again = make_event(webhook.model_copy(update={"attempt": webhook.attempt + 1}), job_id=delivery.event.job_id)
        message = event_message(
            again, exchange="", routing_key=topology.webhook_retry_queue(level), expiration_ms=delay
        )
        await self.ctx.broker.publish_raw(message)

    async def _secret(self, key_id: uuid.UUID | None) -> str | None:
        if key_id is None:
            return None
        cached = self._secrets.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        secret = await signing_secret(self.ctx.pool, key_id)
        self._secrets[key_id] = (time.monotonic() + SECRET_CACHE_S, secret)
        return secret


async def record(pool: asyncpg.Pool, job_id: uuid.UUID | None, webhook: WebhookDelivery, attempt: Attempt) -> None:
    """The attempt, shown on its job or batch; nothing when retention deleted those meanwhile."""
    await pool.execute(
        """
        INSERT INTO webhook_deliveries
            (job_id, batch_id, webhook_id, event, attempt, url, outcome, response_status, duration_ms, error)
        SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
        WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1) OR EXISTS (SELECT 1 FROM batches WHERE id = $2)
        """,
        job_id,
        webhook.batch_id,
        webhook.webhook_id,
        webhook.event,
        webhook.attempt,
        webhook.url,
        attempt.outcome.value,
        attempt.response_status,
        attempt.duration_ms,
        attempt.error,
    )
