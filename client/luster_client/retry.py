"""When a failed call is tried again, and after how long.

A 429 is retried on every call: the limit refused it before anything was done. A 503 or a dropped
connection may have come after the server acted, so only idempotent calls (reads, and POST /jobs with
an Idempotency-Key) are retried on those.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRIED_ALWAYS = frozenset({429})
RETRIED_IF_IDEMPOTENT = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.5
    # A longer Retry-After (a daily byte allowance answers "after midnight") goes back to the caller.
    max_delay_s: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: doubling from base_delay_s, capped."""
        return float(min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s))

    def delay_for(self, status: int, retry_after: str | None, attempt: int, *, idempotent: bool) -> float | None:
        """Seconds to wait before trying again, or None when the answer stands."""
        if attempt >= self.attempts:
            return None
        if status not in RETRIED_ALWAYS and not (idempotent and status in RETRIED_IF_IDEMPOTENT):
            return None
        if retry_after is None:
            return self.backoff(attempt)
        try:
            seconds = float(retry_after)
        except ValueError:
            return self.backoff(attempt)
        return max(seconds, 0.0) if seconds <= self.max_delay_s else None
