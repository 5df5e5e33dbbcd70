"""The engine contract: what every enhancement engine takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from shared.domain import Style, Tier


@dataclass(frozen=True)
class EnhanceRequest:
    """One photo to enhance, with the user's prompt and the job's tier and style."""

    image: bytes
    prompt: str
    tier: Tier
    style: Style
    # Asked again because the first output moved the property's structure (services/worker/guard.py).
    strict: bool = False


@dataclass(frozen=True)
class EnhanceResult:
    """The enhanced photo, its size, and what producing it cost in US dollars."""

    image: bytes
    content_type: str
    width: int
    height: int
    cost: Decimal
    engine: str
    # Why `engine` is not the tier's own: the paid engine could not run (services/worker/engines/routing.py).
    fallback_reason: str | None = None


class Engine(Protocol):
    """Turns an EnhanceRequest into an EnhanceResult or raises an EngineError/UnsupportedImage."""

    name: str

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult: ...

    async def aclose(self) -> None:
        """Release what the engine holds (an HTTP client); the worker calls it once, on shutdown."""
