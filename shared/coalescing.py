"""Coalescing: asks that arrive while earlier ones are being answered are answered together, by one statement.

An api instance answering sixty-four requests at once would otherwise run sixty-four copies of one small
statement, each paying its round trip, its executor start-up and its share of the pool. Here an ask that
finds a free slot (fewer than `parallel` batches under way) is sent at once, with whatever is waiting, so
a lone ask waits for nobody; asks that find every slot taken wait for the next one to free and go
together. Nothing is held back for company: a batch is only ever what had already arrived.

Each batch runs in the context of its first ask (its statement joins that caller's trace, not the trace
of whoever happened to free the slot). A batch that fails fails each of its asks with the same error; an
ask whose caller gave up is dropped from the answers, never from the batch (its work may be done already).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Ask = TypeVar("Ask")
Answer = TypeVar("Answer")


@dataclass
class _Waiting(Generic[Ask, Answer]):
    ask: Ask
    answer: asyncio.Future[Answer]
    context: contextvars.Context


class Coalescer(Generic[Ask, Answer]):
    """Answers asks in batches: `answer_all` takes a batch of asks and returns their answers in order."""

    def __init__(
        self, answer_all: Callable[[Sequence[Ask]], Awaitable[Sequence[Answer]]], *, parallel: int, largest: int
    ) -> None:
        if parallel < 1 or largest < 1:
            raise ValueError("a coalescer needs at least one batch under way, of at least one ask")
        self._answer_all = answer_all
        self._parallel = parallel
        self._largest = largest
        self._waiting: list[_Waiting[Ask, Answer]] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def ask(self, ask: Ask) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(ask, answer, contextvars.copy_context()))
        if len(self._batches) < self._parallel:
            self._send()
        return await answer

    def _send(self) -> None:
        batch, self._waiting = self._waiting[: self._largest], self._waiting[self._largest :]
        sending = asyncio.get_running_loop().create_task(self._answer(batch), context=batch[0].context)
        self._batches.add(sending)

    async def _answer(self, batch: list[_Waiting[Ask, Answer]]) -> None:
        try:
            answers = await self._answer_all([waiting.ask for waiting in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(batch)} asks got {len(answers)} answers")
        except asyncio.CancelledError:
            for waiting in batch:
                waiting.answer.cancel()
            raise
        except Exception as error:
            for _, answer in _still_asked(batch):
                answer.set_exception(error)
        else:
            for index, answer in _still_asked(batch):
                answer.set_result(answers[index])
        finally:
            self._batches.discard(asyncio.current_task())
            if self._waiting:
                self._send()

    async def settle(self) -> None:
        """Wait for the batches under way and those their asks are waiting for."""
        while self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)


def _still_asked(batch: list[_Waiting[Ask, Answer]]) -> Iterator[tuple[int, asyncio.Future[Answer]]]:
    """The answers someone still waits for (a caller that gave up left its future cancelled)."""
    for index, waiting in enumerate(batch):
        if not waiting.answer.done():
            yield index, waiting.answer
