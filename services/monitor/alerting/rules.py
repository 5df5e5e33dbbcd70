"""Alert rules from the deployment guide: pure functions of one check's observation, thresholds from settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from services.monitor.aggregation.http import HttpWindow
from services.monitor.aggregation.snapshot import StatsSnapshot
from services.monitor.aggregation.spend import WARNING_SHARE
from services.monitor.settings import MonitorSettings

Severity = Literal["warning", "critical"]


@dataclass(frozen=True)
class Observation:
    """One look at the whole system: what the alert rules and the health verdict are judged on."""

    at: float
    dependencies: dict[str, bool]  # "database" / "broker" -> answered the last check
    queue_depth: int  # ready messages in the work queues
    jobs_waiting: int  # work nobody has taken yet: the larger of the depth and PostgreSQL's queued jobs
    estimated_active: int
    stats: StatsSnapshot
    spend_today: Decimal | None = None  # US dollars the paid engine billed today (UTC); None: not read yet
    http: dict[str, HttpWindow] = field(default_factory=dict)  # the api's traffic per window, from heartbeats
    apis_active: int = 0  # api instances whose heartbeat is fresh
    apis_seen: bool = False  # any api instance heartbeat since this monitor started


@dataclass(frozen=True)
class Finding:
    """A rule breached now; `key` names the instance (a rule may breach for several dependencies)."""

    key: str
    rule: str
    severity: Severity
    summary: str
    value: float
    threshold: float


class Rule(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def checks(self) -> int:
        """Consecutive breaching checks before the alert fires."""
        ...

    def evaluate(self, observation: Observation) -> list[Finding]: ...


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


@dataclass(frozen=True)
class ErrorRate:
    """Requests the api answered with a 5xx among all it answered, over 5 minutes (the guide's "error rate >
    5 % in 5 minutes"); a client's 4xx is its own mistake, not the service failing."""

    threshold: float
    min_samples: int
    window: str = "5m"
    checks: int = 1
    name: str = "error_rate"

    def evaluate(self, observation: Observation) -> list[Finding]:
        traffic = observation.http.get(self.window)
        if traffic is None or traffic.error_rate is None or traffic.requests < self.min_samples:
            return []
        if traffic.error_rate <= self.threshold:
            return []
        errors = sum(route.server_errors for route in traffic.routes.values())
        summary = (
            f"HTTP error rate {_percent(traffic.error_rate)} over {self.window} ({errors} of {traffic.requests} "
            f"requests answered 5xx), above {_percent(self.threshold)}"
        )
        return [Finding(self.name, self.name, "warning", summary, traffic.error_rate, self.threshold)]


@dataclass(frozen=True)
class FailureRate:
    """Jobs that ended failed among the jobs that ended."""

    threshold: float
    min_samples: int
    window: str = "1h"
    checks: int = 1
    name: str = "failure_rate"

    def evaluate(self, observation: Observation) -> list[Finding]:
        stats = observation.stats.windows[self.window]
        rate = stats.failure_rate
        if rate is None or stats.finished < self.min_samples or rate <= self.threshold:
            return []
        summary = (
            f"job failure rate {_percent(rate)} over {self.window} ({stats.failed} of {stats.finished} "
            f"jobs), above {_percent(self.threshold)}"
        )
        return [Finding(self.name, self.name, "warning", summary, rate, self.threshold)]


@dataclass(frozen=True)
class LatencyP95:
    """P95 of the api's response times over 5 minutes, every route and instance merged (the guide's "P95
    response time > 2 seconds")."""

    threshold_s: float
    min_samples: int
    window: str = "5m"
    checks: int = 1
    name: str = "latency_p95"

    def evaluate(self, observation: Observation) -> list[Finding]:
        traffic = observation.http.get(self.window)
        if traffic is None:
            return []
        p95 = traffic.latency.p95
        if p95 is None or traffic.latency.count < self.min_samples or p95 <= self.threshold_s:
            return []
        slowest = max(traffic.routes.items(), key=lambda item: item[1].latency.p95 or 0.0)[0]
        summary = (
            f"HTTP P95 response time {p95:.2f} s over {self.window}, above {self.threshold_s:g} s "
            f"(slowest route: {slowest})"
        )
        return [Finding(self.name, self.name, "warning", summary, p95, self.threshold_s)]


@dataclass(frozen=True)
class QueueDepth:
    threshold: int
    checks: int
    name: str = "queue_depth"

    def evaluate(self, observation: Observation) -> list[Finding]:
        # Jobs held back for fair share wait in PostgreSQL, not in the queues, and need workers all the same.
        depth = max(observation.queue_depth, observation.jobs_waiting)
        if depth <= self.threshold:
            return []
        summary = (
            f"{depth} jobs waiting for a worker, above {self.threshold}: "
            "scale up the worker service (more replicas in the Railway dashboard)"
        )
        return [Finding(self.name, self.name, "warning", summary, depth, self.threshold)]


@dataclass(frozen=True)
class NoActiveWorker:
    checks: int
    name: str = "no_active_worker"

    def evaluate(self, observation: Observation) -> list[Finding]:
        if observation.jobs_waiting == 0 or observation.estimated_active > 0:
            return []
        summary = f"{observation.jobs_waiting} jobs queued and no active worker: check the worker service"
        return [Finding(self.name, self.name, "critical", summary, observation.jobs_waiting, 0)]


@dataclass(frozen=True)
class NoApiInstance:
    """The api was here and no instance is alive now: nobody can submit a job. (A monitor that has never
    seen an api heartbeat, running on its own, raises nothing.)"""

    checks: int
    name: str = "no_api_instance"

    def evaluate(self, observation: Observation) -> list[Finding]:
        if not observation.apis_seen or observation.apis_active > 0:
            return []
        summary = "no api instance is alive (no fresh heartbeat): check the api service"
        return [Finding(self.name, self.name, "critical", summary, 0, 1)]


@dataclass(frozen=True)
class DependencyDown:
    checks: int
    name: str = "dependency_down"

    def evaluate(self, observation: Observation) -> list[Finding]:
        return [
            Finding(
                f"{self.name}:{dependency}",
                self.name,
                "critical",
                f"{dependency} unhealthy on {self.checks} checks in a row",
                0,
                1,
            )
            for dependency, healthy in sorted(observation.dependencies.items())
            if not healthy
        ]


@dataclass(frozen=True)
class PaidEngineSpend:
    """Today's paid-engine spend against OPENAI_DAILY_BUDGET_USD: a warning at 80 %, critical at the cap.

    At the cap both fire, as two alerts: the warning does not resolve just as things get worse.
    """

    budget_usd: Decimal | None
    warning_share: float = WARNING_SHARE
    checks: int = 1
    name: str = "paid_engine_spend"

    def evaluate(self, observation: Observation) -> list[Finding]:
        spent, budget = observation.spend_today, self.budget_usd
        if spent is None or budget is None:
            return []
        share = float(spent / budget)
        levels: list[tuple[Severity, float]] = [("warning", self.warning_share), ("critical", 1.0)]
        return [self._finding(severity, spent, budget, share) for severity, at in levels if share >= at]

    def _finding(self, severity: Severity, spent: Decimal, budget: Decimal, share: float) -> Finding:
        threshold = budget * Decimal(str(self.warning_share)) if severity == "warning" else budget
        summary = f"paid engine spend today ${spent:.2f} is {_percent(share)} of the ${budget:.2f} daily cap"
        if severity == "critical":
            summary += ": new paid-engine calls are refused until 00:00 UTC"
        return Finding(f"{self.name}:{severity}", self.name, severity, summary, float(spent), float(threshold))


def build_rules(settings: MonitorSettings) -> list[Rule]:
    in_a_row = settings.alert_consecutive_checks
    return [
        ErrorRate(settings.alert_error_rate, settings.alert_min_samples),
        LatencyP95(settings.alert_latency_p95_seconds, settings.alert_min_samples),
        FailureRate(settings.alert_failure_rate, settings.alert_min_samples, window=settings.alert_failure_window),
        QueueDepth(settings.alert_queue_depth, in_a_row),
        NoActiveWorker(in_a_row),
        NoApiInstance(in_a_row),
        DependencyDown(in_a_row),
        PaidEngineSpend(settings.openai_daily_budget_usd),
    ]


def describe(rule: Rule) -> dict[str, Any]:
    """A rule's name and thresholds, for the alerts page."""
    if is_dataclass(rule) and not isinstance(rule, type):
        return asdict(rule)
    return {"name": rule.name, "checks": rule.checks}
