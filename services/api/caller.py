"""The owner behind a request: the API key it came with, and so its plan and limits."""

from __future__ import annotations

from dataclasses import dataclass

from shared.apikeys import ApiKey
from shared.domain import Tier
from shared.errors import Forbidden


@dataclass(frozen=True)
class Caller:
    """The owner behind a request, with the key (and so the plan and limits) it came with."""

    key: ApiKey

    @property
    def owner(self) -> str:
        return self.key.owner

    def require_tier(self, tier: Tier) -> None:
        if tier not in self.key.tiers:
            allowed = ", ".join(sorted(t.value for t in self.key.tiers))
            raise Forbidden(
                f"the {self.key.plan} plan allows tier {allowed}, not {tier.value}",
                field="tier",
                code="tier_not_in_plan",
            )
