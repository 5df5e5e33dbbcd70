"""Waiting for a dependency at start-up: retry with capped exponential backoff, logging why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from shared.errors import DependencyUnavailable
from shared.telemetry.logs import brief

log = structlog.get_logger()
T = TypeVar("T")


async def retry_until_ready(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    give_up_after: float,
    retry_on: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError),
    first_delay: float = 0.5,
) -> T:
    """Call `attempt` until it succeeds, or raise DependencyUnavailable once `give_up_after` seconds pass."""
    deadline = time.monotonic() + give_up_after
    delay = first_delay
    while True:
        try:
            return await attempt()
        except retry_on as error:
            if time.monotonic() + delay > deadline:
                raise DependencyUnavailable(
                    f"{what} did not answer within {give_up_after:g} s: {brief(error)}"
                ) from error
            log.warning("dependency.waiting", dependency=what, error=brief(error), retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
