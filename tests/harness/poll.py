"""One way to wait for a condition: ask until it holds, or fail once a deadline has passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class TimedOut(AssertionError):
    """A condition did not hold within its deadline."""


async def poll(
    check: Callable[[], Awaitable[T]],
    *,
    within: float = 15.0,
    what: str | Callable[[], str],
    every: float = 0.05,
) -> T:
    """Await `check` every `every` seconds until it returns something true, and return that.

    Once `within` seconds have passed (15 by default: a loaded 2-core machine), fail with `what`; a
    callable is asked only then, so the message can tell the last state seen (a job, a process's log).
    """
    deadline = time.monotonic() + within
    while not (found := await check()):
        if time.monotonic() > deadline:
            raise TimedOut(f"timed out after {within:g} s waiting for {what() if callable(what) else what}")
        await asyncio.sleep(every)
    return found
