"""The alert engine: rule findings become firing and resolved transitions, each recorded once."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from services.monitor.aggregation.snapshot import moment
from services.monitor.alerting.rules import Finding, Observation, Rule, Severity

State = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Alert(Finding):
    """A finding that is firing, and since when."""

    since: datetime


@dataclass(frozen=True)
class Transition:
    key: str
    rule: str
    severity: Severity
    state: State
    summary: str
    at: datetime
    since: datetime  # when the alert started firing


class AlertEngine:
    """A finding fires after its rule's number of consecutive breaching checks; one clean check resolves it."""

    def __init__(self, rules: Sequence[Rule], *, history_size: int = 200) -> None:
        self.rules = list(rules)
        self._active: dict[str, Alert] = {}
        self._streaks: Counter[str] = Counter()
        self._history: deque[Transition] = deque(maxlen=history_size)

    def evaluate(self, observation: Observation, now: float) -> list[Transition]:
        found = {f.key: (rule, f) for rule in self.rules for f in rule.evaluate(observation)}
        transitions = [t for key, (rule, f) in found.items() if (t := self._breach(rule, f, now)) is not None]
        for key in [k for k in self._streaks if k not in found]:
            del self._streaks[key]
        for key in [k for k in self._active if k not in found]:
            transitions.append(self._resolve(key, now))
        self._history.extend(transitions)
        return transitions

    def _breach(self, rule: Rule, finding: Finding, now: float) -> Transition | None:
        self._streaks[finding.key] += 1
        current = self._active.get(finding.key)
        if current is not None:
            self._active[finding.key] = replace(current, summary=finding.summary, value=finding.value)
            return None
        if self._streaks[finding.key] < rule.checks:
            return None
        alert = Alert(**vars(finding), since=moment(now))
        self._active[finding.key] = alert
        return Transition(alert.key, alert.rule, alert.severity, "firing", alert.summary, alert.since, alert.since)

    def _resolve(self, key: str, now: float) -> Transition:
        alert = self._active.pop(key)
        return Transition(key, alert.rule, alert.severity, "resolved", alert.summary, moment(now), alert.since)

    @property
    def active(self) -> list[Alert]:
        return sorted(self._active.values(), key=lambda a: (a.severity != "critical", a.since))

    @property
    def history(self) -> list[Transition]:
        """Newest first."""
        return list(reversed(self._history))
