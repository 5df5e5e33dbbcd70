"""/metrics: a Prometheus collector that reads the monitor's state at scrape time, on a registry of its own."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.latency import Metric as Latency
from services.monitor.alerting.alerts import AlertEngine
from services.monitor.alerting.checker import Checker
from shared.telemetry.metrics import service_registry

LATENCY_HELP = {
    Latency.QUEUE_WAIT: "Time from queued to the first start of a job.",
    Latency.PROCESSING: "Time from the start of an attempt to its end.",
    Latency.END_TO_END: "Time from queued to succeeded or failed.",
}


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it: 5.0, 0.25, +Inf."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class MonitorCollector(Collector):
    def __init__(self, aggregator: Aggregator, checker: Checker, alerts: AlertEngine) -> None:
        self.aggregator = aggregator
        self.checker = checker
        self.alerts = alerts

    def collect(self) -> Iterator[Metric]:
        yield from (self._jobs(), self._events(), *self._latencies(), *self._queues())
        yield from (self._workers(), *self._api(), self._dependencies(), self._alerts(), self._budget())
        yield from (*self._spend(), *self._flagged())

    def _jobs(self) -> Metric:
        family = GaugeMetricFamily("luster_jobs", "Jobs by current status and tier.", labels=["status", "tier"])
        for status, tier, count in self.aggregator.statuses.items():
            family.add_metric([status.value, tier.value], count)
        return family

    def _events(self) -> Metric:
        family = CounterMetricFamily(
            "luster_job_events", "Job events seen since the monitor started.", labels=["event", "tier"]
        )
        for (kind, tier), count in sorted(self.aggregator.totals.items()):
            family.add_metric([kind.value, tier.value], count)
        return family

    def _latencies(self) -> Iterator[Metric]:
        for metric in Latency:
            family = HistogramMetricFamily(f"luster_job_{metric.value}_seconds", LATENCY_HELP[metric], labels=["tier"])
            for (kind, tier), histogram in self.aggregator.histograms.items():
                if kind is metric:
                    buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
                    family.add_metric([tier.value], buckets, sum_value=histogram.sum)
            yield family

    def _queues(self) -> Iterator[Metric]:
        messages = GaugeMetricFamily("luster_queue_messages", "Ready messages per queue.", labels=["queue", "kind"])
        consumers = GaugeMetricFamily("luster_queue_consumers", "Consumers per queue.", labels=["queue", "kind"])
        for stat in self.checker.latest.queues if self.checker.latest else []:
            if stat.messages is not None and stat.consumers is not None:
                messages.add_metric([stat.name, stat.kind], stat.messages)
                consumers.add_metric([stat.name, stat.kind], stat.consumers)
        yield from (messages, consumers)

    def _api(self) -> Iterator[Metric]:
        """The api fleet as the last check saw it: the same windows, from the same heartbeats, as the
        dashboard's API panel, so the two never disagree for one window."""
        observation = self.checker.observation
        yield GaugeMetricFamily(
            "luster_api_instances_active",
            "Api instances heartbeating.",
            value=observation.apis_active if observation else 0,
        )
        requests = GaugeMetricFamily(
            "luster_api_requests_per_minute",
            "Requests the api answered per minute, over the window.",
            labels=["window"],
        )
        errors = GaugeMetricFamily(
            "luster_api_error_ratio",
            "Share of requests answered 5xx (server) or 4xx (client).",
            labels=["window", "kind"],
        )
        latency = GaugeMetricFamily(
            "luster_api_response_seconds", "Response time quantiles over the window.", labels=["window", "quantile"]
        )
        for name, window in (observation.http if observation else {}).items():
            requests.add_metric([name], window.requests_per_min)
            for kind, ratio in (("server", window.error_rate), ("client", window.client_error_rate)):
                if ratio is not None:
                    errors.add_metric([name, kind], ratio)
            for quantile, value in (
                ("0.5", window.latency.p50),
                ("0.95", window.latency.p95),
                ("0.99", window.latency.p99),
            ):
                if value is not None:
                    latency.add_metric([name, quantile], value)
        yield from (requests, errors, latency)

    def _workers(self) -> Metric:
        observation = self.checker.observation
        return GaugeMetricFamily(
            "luster_workers_active",
            "Workers heartbeating and consuming.",
            value=observation.estimated_active if observation else 0,
        )

    def _dependencies(self) -> Metric:
        family = GaugeMetricFamily(
            "luster_dependency_up", "1 when the dependency answered the last check.", labels=["dependency"]
        )
        observation = self.checker.observation
        for name, healthy in sorted(observation.dependencies.items()) if observation else []:
            family.add_metric([name], 1 if healthy else 0)
        return family

    def _alerts(self) -> Metric:
        family = GaugeMetricFamily("luster_alerts_firing", "Firing alerts per rule.", labels=["rule"])
        firing = Counter(alert.rule for alert in self.alerts.active)
        for rule in self.alerts.rules:
            family.add_metric([rule.name], firing[rule.name])
        return family

    def _budget(self) -> Metric:
        budget = self.checker.budget
        return GaugeMetricFamily(
            "luster_sentry_spans_month_estimate",
            "Sentry spans a month at the current rate.",
            value=budget.spans_per_month if budget else 0,
        )

    def _spend(self) -> Iterator[Metric]:
        paid = self.checker.spend
        family = GaugeMetricFamily(
            "luster_paid_engine_spend_usd",
            "US dollars billed by the paid engine: today (UTC) and this calendar month.",
            labels=["period"],
        )
        if paid is not None:
            family.add_metric(["today"], float(paid.today_usd))
            family.add_metric(["month"], float(paid.month_usd))
        yield family
        # Absent without a cap (OPENAI_DAILY_BUDGET_USD unset): a 0 would read as a cap of nothing.
        if paid is not None and paid.daily_budget_usd is not None:
            yield GaugeMetricFamily(
                "luster_paid_engine_daily_budget_usd",
                "OPENAI_DAILY_BUDGET_USD: the cap on the paid engine's spend per UTC day.",
                value=float(paid.daily_budget_usd),
            )

    def _flagged(self) -> Iterator[Metric]:
        if self.checker.flagged is not None:
            yield GaugeMetricFamily(
                "luster_jobs_flagged",
                "Jobs the structure guard flagged (their output changed the structure), succeeded or failed.",
                value=self.checker.flagged,
            )


def registry_for(collector: MonitorCollector, version: str) -> CollectorRegistry:
    """A registry of the monitor's own: the fleet-wide view, and the monitor process's own CPU, memory and
    build as every service exposes them; nothing else in the process (or a test's other apps) leaks in."""
    registry = service_registry("monitor", version)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
