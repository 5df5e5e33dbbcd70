"""The dead-letter queue as operators use it: look without losing, re-queue one or all, purge.

Looking takes messages with basic.get *without* acking them, on a channel of its own, and closes that
channel at the end: the broker puts every held message back. Nothing is republished, so a look can
neither lose nor duplicate a message, and a monitor that dies mid-look gives them back the same way.
What it costs: RabbitMQ 3.10 quorum queues put returned messages back in no particular order, and
count each look in the x-delivery-count header (the dead-letter queue sets no delivery limit, so
this is harmless; listings sort by dead-lettering time and ignore that header). The broker takes
messages back only after close-ok, so each operation waits until they are visible again before the
next one starts (operations are serialised by a lock).

A re-queue publishes a clean copy to the queue the message died in, waits for the broker's confirm,
and only then acks the original: at worst (a crash between the two) a message exists twice, never
zero times. Only Luster's own queues are accepted as destinations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError, PublishError

from services.monitor.broker.deadletter import DeadLetter, describe, key_of, revived_headers
from services.monitor.broker.queues import passive_declare
from shared.broker import Broker
from shared.errors import Conflict, NotFound
from shared.messages import OutgoingMessage

GET_TIMEOUT_S = 5.0
SETTLE_POLLS, SETTLE_STEP_S = 200, 0.01  # up to 2 s for the broker to take back what a look held
SCAN_LIMIT = 10_000  # how far a re-queue by id looks before it gives up


@dataclass(frozen=True)
class DeadLetterPage:
    total: int
    messages: list[DeadLetter]


@dataclass(frozen=True)
class RequeueAll:
    requeued: int
    kept: int  # left in the dead-letter queue: no Luster queue to go back to, or died again in this pass


@dataclass
class _Look:
    """One operation's channel, what was ready when it began, and how many messages it acked."""

    channel: AbstractChannel
    ready: int
    acked: int = 0


class DeadLetterBox:
    def __init__(self, broker: Broker, *, peek_limit: int) -> None:
        self.broker = broker
        self.name = broker.topology.dead_letter_queue
        self.peek_limit = peek_limit
        self.destinations = frozenset(broker.topology.all_queues()) - {self.name}
        self._lock = asyncio.Lock()  # one look at a time: two would each see only part of the queue

    async def _ready(self) -> int:
        channel = await self.broker.connection.channel()
        try:
            return (await passive_declare(channel, self.name)).message_count or 0
        finally:
            await channel.close()

    async def _settle(self, expected: int) -> None:
        """Wait until the broker has put back what a closed channel held: it does so after close-ok,
        and the next look must not start before (it would miss them, or count too few)."""
        for _ in range(SETTLE_POLLS):
            if await self._ready() >= expected:
                return
            await asyncio.sleep(SETTLE_STEP_S)

    @asynccontextmanager
    async def _looking(self) -> AsyncIterator[_Look]:
        async with self._lock:
            look = _Look(await self.broker.connection.channel(), await self._ready())
            try:
                yield look
            finally:
                await look.channel.close()  # everything taken and not acked goes back to the queue
                await self._settle(look.ready - look.acked)

    async def _take(self, look: _Look, limit: int) -> AsyncIterator[AbstractIncomingMessage]:
        queue = await look.channel.get_queue(self.name, ensure=False)
        for _ in range(limit):
            message = await queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT_S)
            if message is None:
                return
            yield message

    async def peek(self) -> DeadLetterPage:
        async with self._looking() as look:
            letters = [_describe(m) async for m in self._take(look, self.peek_limit)]
        letters.sort(
            key=lambda letter: letter.dead_lettered_at.timestamp() if letter.dead_lettered_at else 0, reverse=True
        )
        return DeadLetterPage(max(look.ready, len(letters)), letters)

    async def requeue(self, key: str) -> DeadLetter:
        """Send the first message with this key back where it died."""
        async with self._looking() as look:
            async for message in self._take(look, SCAN_LIMIT):
                if key_of(message.body, message.message_id) == key:
                    letter = _describe(message)
                    await self._revive(look, message, letter)
                    return letter
        raise NotFound(f"no dead-lettered message {key}", field="message_id")

    async def requeue_all(self) -> RequeueAll:
        revived: set[str] = set()
        kept = 0
        async with self._looking() as look:
            async for message in self._take(look, SCAN_LIMIT):
                letter = _describe(message)
                # A re-queued message that dies again at once comes back here: it stays, held, and the
                # loop ends when the queue has nothing left to give this channel.
                if letter.origin in self.destinations and letter.key not in revived:
                    await self._revive(look, message, letter)
                    revived.add(letter.key)
                else:
                    kept += 1
        return RequeueAll(len(revived), kept)

    async def purge(self) -> int:
        async with self._looking() as look:
            result = await (await look.channel.get_queue(self.name, ensure=False)).purge()
            look.ready = 0
            return int(result.message_count or 0)

    async def _revive(self, look: _Look, message: AbstractIncomingMessage, letter: DeadLetter) -> None:
        if letter.origin not in self.destinations:
            raise Conflict(f"message {letter.key} names no Luster queue to go back to ({letter.origin!r})")
        headers = revived_headers(message.headers or {}, time.time())
        copy = OutgoingMessage(
            exchange="",
            routing_key=letter.origin,
            body=message.body,
            message_id=message.message_id or "",
            headers=headers,
        )
        try:
            await self.broker.publish_raw(copy)
        except (DeliveryError, PublishError) as error:
            raise Conflict(f"queue {letter.origin} refused the message: {error!r}") from error
        await message.ack()
        look.acked += 1


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    return describe(message.body, message.headers or {}, message.message_id)
