"""Bounded concurrency across tiers: premium goes first, free still progresses."""

from __future__ import annotations

import asyncio
from collections import deque

from shared.domain import Tier


class SchedulerClosed(Exception):
    """The worker is stopping; a waiting job must be handed back to the broker."""


class Slot:
    """One granted slot, given back once: when its job leaves the engine, or at the latest when it ends."""

    def __init__(self, scheduler: TierScheduler) -> None:
        self._scheduler: TierScheduler | None = scheduler

    def release(self) -> None:
        if self._scheduler is not None:
            self._scheduler.release()
            self._scheduler = None


class TierScheduler:
    """`capacity` slots; when both tiers wait, `premium_share` premium grants precede each free one."""

    def __init__(self, capacity: int, *, premium_share: int = 3) -> None:
        self.capacity = capacity
        self.premium_share = premium_share
        self.in_use = 0
        self._waiting: dict[Tier, deque[asyncio.Future[None]]] = {tier: deque() for tier in Tier}
        self._premium_streak = 0
        self._closed = False

    async def acquire(self, tier: Tier) -> None:
        if self._closed:
            raise SchedulerClosed
        if self.in_use < self.capacity and not any(self._waiting.values()):
            self._grant(tier)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[tier].append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled in the same tick: give the slot back
            elif future in self._waiting[tier]:
                self._waiting[tier].remove(future)
            raise

    async def slot(self, tier: Tier) -> Slot:
        """`acquire`, as a slot that can be given back early and only once."""
        await self.acquire(tier)
        return Slot(self)

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def close(self) -> None:
        """Refuse new work and turn every waiter away."""
        self._closed = True
        for queue in self._waiting.values():
            while queue:
                queue.popleft().set_exception(SchedulerClosed())

    def _grant(self, tier: Tier) -> None:
        self.in_use += 1
        self._premium_streak = self._premium_streak + 1 if tier is Tier.PREMIUM else 0

    def _next_tier(self) -> Tier | None:
        premium, free = self._waiting[Tier.PREMIUM], self._waiting[Tier.FREE]
        if premium and (not free or self._premium_streak < self.premium_share):
            return Tier.PREMIUM
        return Tier.FREE if free else None

    def _wake(self) -> None:
        while self.in_use < self.capacity and (tier := self._next_tier()) is not None:
            future = self._waiting[tier].popleft()
            if not future.done():
                self._grant(tier)
                future.set_result(None)
