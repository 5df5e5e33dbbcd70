"""What a key may still do, as one limited request found it (services/api/keycounter.py counts it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared.errors import TooManyRequests

Action = Literal["uploads", "jobs"]


@dataclass(frozen=True)
class Allowance:
    """What a key may still do, as one limited request found it."""

    requests_limit: int
    requests_left: int
    reset_s: int
    in_flight: int  # counted up to in_flight_limit: whether it is reached is all that is asked
    in_flight_limit: int
    bytes_left: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.requests_limit),
            "RateLimit-Remaining": str(max(self.requests_left, 0)),
            "RateLimit-Reset": str(self.reset_s),
        }

    def require_bytes(self, size: int) -> None:
        if size > self.bytes_left:
            raise TooManyRequests(
                f"this key may store {max(self.bytes_left, 0)} more bytes today; the photo has {size}",
                code="daily_bytes_exceeded",
                headers={"Retry-After": str(seconds_to_midnight())},
            )


def seconds_to_midnight() -> int:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return math.ceil((midnight - now).total_seconds())
