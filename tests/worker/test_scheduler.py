"""TierScheduler: bounded slots, premium first, free still progressing, a clean close, no leaked slots."""

from __future__ import annotations

import asyncio

import pytest

from services.worker.scheduler import SchedulerClosed, TierScheduler
from shared.domain import Tier

P, F = Tier.PREMIUM, Tier.FREE


async def settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


def in_use(scheduler: TierScheduler) -> int:
    """Read afresh (a type checker keeps an attribute narrowed by an earlier loop condition)."""
    return scheduler.in_use


class Waiters:
    """Tasks queued on a scheduler, recording the order in which they are granted a slot."""

    def __init__(self, scheduler: TierScheduler) -> None:
        self.scheduler = scheduler
        self.granted: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    async def add(self, name: str, tier: Tier) -> None:
        async def wait() -> None:
            await self.scheduler.acquire(tier)
            self.granted.append(name)

        self.tasks[name] = asyncio.create_task(wait())
        await settle()

    async def release_one(self) -> None:
        self.scheduler.release()
        await settle()


async def test_acquire_is_immediate_while_slots_are_free() -> None:
    scheduler = TierScheduler(2)

    async with asyncio.timeout(1):
        await scheduler.acquire(F)
        await scheduler.acquire(P)

    assert scheduler.in_use == 2


async def test_a_full_scheduler_makes_callers_wait_until_a_release() -> None:
    scheduler = TierScheduler(1)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    await waiters.add("next", F)

    assert waiters.granted == []
    await waiters.release_one()

    assert waiters.granted == ["next"]
    assert scheduler.in_use == 1


async def test_premium_goes_before_free_that_waited_longer() -> None:
    scheduler = TierScheduler(1)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    for name in ("free-1", "free-2"):
        await waiters.add(name, F)
    await waiters.add("premium", P)

    await waiters.release_one()

    assert waiters.granted == ["premium"]


async def test_each_tier_is_served_in_arrival_order() -> None:
    scheduler = TierScheduler(1)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    for name in ("p1", "p2", "p3"):
        await waiters.add(name, P)

    for _ in range(3):
        await waiters.release_one()

    assert waiters.granted == ["p1", "p2", "p3"]


@pytest.mark.parametrize("share", [1, 3, 5])
async def test_free_still_progresses_at_the_configured_share(share: int) -> None:
    scheduler = TierScheduler(1, premium_share=share)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    for n in range(4 * share):
        await waiters.add(f"P{n}", P)
    for n in range(6):
        await waiters.add(f"F{n}", F)

    while len(waiters.granted) < 4 * share + 6:
        await waiters.release_one()

    tiers = "".join(name[0] for name in waiters.granted)
    # While both tiers wait, every `share` premium grants are followed by one free grant.
    assert tiers == ("P" * share + "F") * 4 + "F" * 2
    assert [name for name in waiters.granted if name[0] == "F"] == [f"F{n}" for n in range(6)]


async def test_with_only_free_waiting_free_takes_every_slot() -> None:
    scheduler = TierScheduler(2, premium_share=3)
    await scheduler.acquire(P)
    await scheduler.acquire(P)
    waiters = Waiters(scheduler)
    for name in ("f1", "f2"):
        await waiters.add(name, F)

    await waiters.release_one()
    await waiters.release_one()

    assert waiters.granted == ["f1", "f2"]
    assert scheduler.in_use == 2


async def test_close_turns_waiters_and_newcomers_away() -> None:
    scheduler = TierScheduler(1)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    await waiters.add("premium", P)
    await waiters.add("free", F)

    scheduler.close()
    results = await asyncio.gather(*waiters.tasks.values(), return_exceptions=True)

    assert [type(result) for result in results] == [SchedulerClosed, SchedulerClosed]
    with pytest.raises(SchedulerClosed):
        await scheduler.acquire(P)
    assert waiters.granted == []
    scheduler.release()  # the job that held the slot finishes after the close
    assert scheduler.in_use == 0


async def test_a_waiter_cancelled_while_waiting_takes_no_slot() -> None:
    scheduler = TierScheduler(1)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    await waiters.add("gone", P)
    await waiters.add("stays", F)

    waiters.tasks["gone"].cancel()
    await settle()
    await waiters.release_one()

    assert waiters.tasks["gone"].cancelled()
    assert waiters.granted == ["stays"]
    assert scheduler.in_use == 1
    await waiters.release_one()
    assert scheduler.in_use == 0


async def test_a_waiter_cancelled_just_after_its_grant_gives_the_slot_back() -> None:
    scheduler = TierScheduler(1)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    await waiters.add("unlucky", P)
    await waiters.add("next", F)

    scheduler.release()  # grants "unlucky" ...
    waiters.tasks["unlucky"].cancel()  # ... which is cancelled before it could run
    await settle()

    assert waiters.tasks["unlucky"].cancelled()
    assert waiters.granted == ["next"]
    assert scheduler.in_use == 1


async def test_many_cancellations_leak_no_slots() -> None:
    scheduler = TierScheduler(2)
    await scheduler.acquire(F)
    await scheduler.acquire(F)
    waiters = Waiters(scheduler)
    for n in range(20):
        await waiters.add(f"w{n}", P if n % 2 else F)
    for n, task in enumerate(waiters.tasks.values()):
        if n % 3 == 0:
            task.cancel()
    await settle()

    while scheduler.in_use:  # until every slot is back
        await waiters.release_one()

    survivors = [name for n, name in enumerate(waiters.tasks) if n % 3]
    assert sorted(waiters.granted) == sorted(survivors)
    async with asyncio.timeout(1):
        await scheduler.acquire(P)
        await scheduler.acquire(F)
    assert in_use(scheduler) == 2


async def test_a_slot_is_given_back_once_however_often_it_is_released() -> None:
    scheduler = TierScheduler(1)
    slot = await scheduler.slot(F)
    slot.release()
    slot.release()  # the job left the engine, then its delivery ended

    assert in_use(scheduler) == 0
    await scheduler.slot(P)
    assert in_use(scheduler) == 1
