"""The coalescer: a lone ask goes at once, asks that wait go together, and one failure is each of its batch's."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence

import pytest

from shared.coalescing import Coalescer

CALLER = contextvars.ContextVar("caller", default="nobody")


class Doubler:
    """Answers each ask with twice its number, holding each batch until the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.callers: list[str] = []
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None

    async def answer_all(self, asks: Sequence[int]) -> list[int]:
        self.batches.append(list(asks))
        self.callers.append(CALLER.get())
        self.arrived.set()
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [2 * ask for ask in asks]


async def _asking(coalescer: Coalescer[int, int], asks: Sequence[int]) -> list[asyncio.Task[int]]:
    tasks = []
    for ask in asks:
        CALLER.set(f"caller {ask}")
        tasks.append(asyncio.create_task(coalescer.ask(ask)))
        await asyncio.sleep(0)  # each ask in the coalescer before the next is made
    return tasks


async def test_a_lone_ask_goes_at_once_and_those_that_wait_go_together() -> None:
    doubler = Doubler()
    coalescer = Coalescer(doubler.answer_all, parallel=1, largest=100)

    first = await _asking(coalescer, [1])
    async with asyncio.timeout(5):
        await doubler.arrived.wait()
    assert doubler.batches == [[1]]  # sent before anyone else asked
    waiting = await _asking(coalescer, [2, 3, 4])
    assert doubler.batches == [[1]]  # the one batch allowed is under way: the others wait for it
    doubler.release.set()

    assert await asyncio.gather(*first, *waiting) == [2, 4, 6, 8]
    assert doubler.batches == [[1], [2, 3, 4]]


async def test_batches_go_side_by_side_up_to_parallel_and_no_larger_than_largest() -> None:
    doubler = Doubler()
    coalescer = Coalescer(doubler.answer_all, parallel=2, largest=2)

    tasks = await _asking(coalescer, [1, 2, 3, 4, 5, 6, 7])
    assert doubler.batches == [[1], [2]]
    doubler.release.set()

    assert await asyncio.gather(*tasks) == [2, 4, 6, 8, 10, 12, 14]
    assert sorted(len(batch) for batch in doubler.batches) == [1, 1, 1, 2, 2]
    assert sorted(ask for batch in doubler.batches for ask in batch) == [1, 2, 3, 4, 5, 6, 7]


async def test_a_batch_runs_in_its_first_askers_context() -> None:
    """Its statement belongs to the trace of a request it answers, not to whoever freed the slot."""
    doubler = Doubler()
    coalescer = Coalescer(doubler.answer_all, parallel=1, largest=100)

    tasks = await _asking(coalescer, [1, 2, 3])
    doubler.release.set()
    await asyncio.gather(*tasks)

    assert doubler.callers == ["caller 1", "caller 2"]


async def test_a_failed_batch_fails_each_of_its_asks_and_the_next_batch_is_answered() -> None:
    doubler = Doubler()
    coalescer = Coalescer(doubler.answer_all, parallel=1, largest=100)
    doubler.fail_with = ConnectionError("the database went away")

    failing = await _asking(coalescer, [1, 2, 3])
    doubler.release.set()
    outcomes = await asyncio.gather(*failing, return_exceptions=True)

    assert outcomes == [doubler.fail_with] * 3
    doubler.fail_with = None
    assert await coalescer.ask(4) == 8


async def test_a_caller_that_gives_up_leaves_its_batch_to_answer_the_others() -> None:
    doubler = Doubler()
    coalescer = Coalescer(doubler.answer_all, parallel=1, largest=100)

    first, impatient, patient = await _asking(coalescer, [1, 2, 3])
    async with asyncio.timeout(5):
        await doubler.arrived.wait()
    impatient.cancel()
    doubler.release.set()

    assert await first == 2 and await patient == 6
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert doubler.batches == [[1], [2, 3]]  # its ask was sent all the same: its work may be done


async def test_settle_waits_for_every_batch_under_way_and_queued() -> None:
    doubler = Doubler()
    coalescer = Coalescer(doubler.answer_all, parallel=1, largest=1)

    tasks = await _asking(coalescer, [1, 2, 3])
    settling = asyncio.create_task(coalescer.settle())
    await asyncio.sleep(0)
    assert not settling.done()
    doubler.release.set()
    await settling

    assert all(task.done() for task in tasks) and doubler.batches == [[1], [2], [3]]


def test_a_coalescer_needs_room_for_one_ask() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Coalescer(Doubler().answer_all, parallel=0, largest=1)
