"""The health verdict: unhealthy when a dependency is down, degraded when work is not flowing as it should."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from services.monitor.alerting.alerts import Alert
from services.monitor.alerting.rules import Observation

Status = Literal["healthy", "degraded", "unhealthy"]
# A check takes at most a few seconds (its queries and probes time out); three missed ones mean stuck.
MISSED_CHECKS = 3
CHECK_GRACE_S = 10.0


def stale_after(check_interval: float) -> float:
    """How long what the last check saw still stands once it finished; past that, the checker is stuck."""
    return MISSED_CHECKS * check_interval + CHECK_GRACE_S


@dataclass(frozen=True)
class Verdict:
    status: Status
    reasons: list[str]

    @property
    def http_status(self) -> int:
        return 503 if self.status == "unhealthy" else 200


def _unhealthy_reasons(observation: Observation, now: float, stale_after: float) -> list[str]:
    reasons = [f"{name} unhealthy" for name, healthy in sorted(observation.dependencies.items()) if not healthy]
    if now - observation.at > stale_after:
        # The checker itself is stuck: whatever it last saw can no longer be vouched for.
        reasons.append(f"checks stalled: the last one finished {now - observation.at:.0f} s ago")
    return reasons


def _degraded_reasons(observation: Observation, alerts: Sequence[Alert], depth_threshold: int) -> list[str]:
    reasons = []
    if observation.jobs_waiting > 0 and observation.estimated_active == 0:
        reasons.append(f"{observation.jobs_waiting} jobs waiting and no active worker")
    if observation.queue_depth > depth_threshold:
        reasons.append(f"queue depth {observation.queue_depth} above {depth_threshold}")
    reasons += [f"alert firing: {alert.summary}" for alert in alerts]
    return reasons


def assess(
    observation: Observation | None, alerts: Sequence[Alert], *, now: float, stale_after: float, depth_threshold: int
) -> Verdict:
    if observation is None:
        return Verdict("unhealthy", ["no check has finished yet"])
    if reasons := _unhealthy_reasons(observation, now, stale_after):
        return Verdict("unhealthy", reasons)
    if reasons := _degraded_reasons(observation, alerts, depth_threshold):
        return Verdict("degraded", reasons)
    return Verdict("healthy", [])
