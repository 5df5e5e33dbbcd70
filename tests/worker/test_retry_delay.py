"""Which delay queue a retry waits in, and how long: the attempt's backoff, or an engine's Retry-After."""

from __future__ import annotations

import pytest

from services.worker.transitions import retry_delay
from shared.topology import RETRY_DELAYS_MS

TOP = len(RETRY_DELAYS_MS) - 1


@pytest.mark.parametrize("level", range(len(RETRY_DELAYS_MS)))
def test_without_retry_after_the_attempts_own_level_and_backoff(level: int) -> None:
    chosen, delay = retry_delay(level, scale=1.0)

    assert chosen == level
    assert RETRY_DELAYS_MS[level] <= delay <= RETRY_DELAYS_MS[level] * 1.25


@pytest.mark.parametrize(
    ("at_least_ms", "scale", "level"),
    [
        (3_000, 1.0, 1),  # 1 s < 3 s <= 5 s
        (5_000, 1.0, 1),
        (6_000, 1.0, 2),
        (30_000, 1.0, 2),
        (3_000, 0.01, TOP),  # a compressed ladder (tests): 3 s outlasts every level
        (120_001, 1.0, TOP),
        (3_600_000, 1.0, TOP),  # longer than every level: the top one, still waited in full
    ],
)
def test_a_retry_after_waits_in_full_in_the_lowest_level_long_enough(
    at_least_ms: int, scale: float, level: int
) -> None:
    chosen, delay = retry_delay(0, scale=scale, at_least_ms=at_least_ms)

    assert (chosen, delay) == (level, at_least_ms)


def test_a_retry_after_shorter_than_the_backoff_changes_nothing() -> None:
    chosen, delay = retry_delay(2, scale=1.0, at_least_ms=2_000)

    assert chosen == 2
    assert delay >= RETRY_DELAYS_MS[2]
