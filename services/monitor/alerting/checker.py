"""The periodic check: ask PostgreSQL and RabbitMQ, look at everything, judge the alert rules.

Health answers and alerts read the latest check, so probes of /health never reach the dependencies.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import structlog

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.apis import ApiWatch
from services.monitor.aggregation.budget import SpanBudget, estimate, jobs_per_month
from services.monitor.aggregation.census import job_counts, job_volume
from services.monitor.aggregation.flagged import count_flagged
from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.aggregation.spend import PaidSpend, paid_spend
from services.monitor.alerting.alerts import AlertEngine
from services.monitor.alerting.rules import Observation
from services.monitor.alerting.webhook import Webhook
from services.monitor.broker.queues import Queues, QueueStat, work_consumers, work_depth
from services.monitor.settings import MonitorSettings
from shared import spend
from shared.broker import Broker
from shared.domain import JobStatus
from shared.telemetry.tracing import untraced

log = structlog.get_logger()
DEPENDENCY_TIMEOUT_S = 5.0  # an answer slower than this counts as no answer


@dataclass(frozen=True)
class Check:
    at: float
    queues: list[QueueStat]
    errors: dict[str, str]  # dependency -> why the check found it unhealthy


def estimated_active(heartbeats: int, consumers: int | None) -> int:
    """Workers that beat *and* consume: after a broker restart a robust connection may come back with
    its heartbeat publishing but no consumer (aio-pika #231, #563), so the broker's count caps ours."""
    return heartbeats if consumers is None else min(heartbeats, consumers)


class Checker:
    def __init__(
        self,
        settings: MonitorSettings,
        *,
        pool: asyncpg.Pool,
        broker: Broker,
        queues: Queues,
        aggregator: Aggregator,
        workers: WorkerRegistry,
        apis: ApiWatch,
        alerts: AlertEngine,
        webhook: Webhook | None,
    ) -> None:
        self.settings = settings
        self.pool, self.broker, self.queues = pool, broker, queues
        self.aggregator, self.workers, self.alerts, self.webhook = aggregator, workers, alerts, webhook
        self.apis = apis
        self.latest: Check | None = None
        self.observation: Observation | None = None
        self.budget: SpanBudget | None = None
        # The last answer stands when a later read fails: spend only grows within a day.
        self.spend: PaidSpend | None = None
        self.flagged: int | None = None  # jobs the structure guard flagged, ever
        self._budget_at = 0.0
        self._stop = asyncio.Event()

    async def _database(self, errors: dict[str, str]) -> bool:
        try:
            # Bounded as a whole: a partitioned network makes even acquiring a connection hang.
            async with asyncio.timeout(DEPENDENCY_TIMEOUT_S):
                counts = await job_counts(self.pool)
            self.aggregator.reconcile(counts)
        except Exception as error:  # any failure to answer is what "unhealthy" means here
            errors["database"] = repr(error)
            return False
        return True

    async def _broker(self, errors: dict[str, str]) -> list[QueueStat]:
        try:
            if not await self.broker.is_healthy():
                raise ConnectionError("broker connection or channel is closed")
            async with asyncio.timeout(DEPENDENCY_TIMEOUT_S):
                return await self.queues.inspect()
        except Exception as error:
            errors["broker"] = repr(error)
            return []

    async def check(self) -> Observation:
        errors: dict[str, str] = {}
        with untraced():  # a trace every few seconds would drown the ones that matter
            database_ok = await self._database(errors)
            stats = await self._broker(errors)
            if database_ok:
                await self._refresh_spend()
        now = time.time()
        depth = work_depth(stats)
        observation = Observation(
            at=now,
            dependencies={"database": database_ok, "broker": "broker" not in errors},
            queue_depth=depth,
            jobs_waiting=max(depth, self.aggregator.statuses.count(JobStatus.QUEUED)),
            estimated_active=estimated_active(self.workers.active_count(now), work_consumers(stats)),
            stats=self.aggregator.snapshot(now),
            spend_today=self.spend.today_usd if self.spend else None,
            http=self.apis.traffic.windows(now),
            apis_active=self.apis.registry.active_count(now),
            apis_seen=self.apis.registry.ever_seen,
        )
        self.latest, self.observation = Check(now, stats, errors), observation
        self._judge(observation, now)
        if database_ok and now - self._budget_at >= self.settings.budget_refresh_interval:
            await self._refresh_budget(now)
        return observation

    def _judge(self, observation: Observation, now: float) -> None:
        for transition in self.alerts.evaluate(observation, now):
            log.warning("alert.transition", alert=transition.key, state=transition.state, summary=transition.summary)
            if self.webhook is not None:
                self.webhook.submit(transition)

    async def _refresh_spend(self) -> None:
        try:
            async with asyncio.timeout(DEPENDENCY_TIMEOUT_S):
                totals = await spend.totals(self.pool)
                flagged = await count_flagged(self.pool)
        except Exception:  # the database answered this check's count: a failure here is not an outage
            log.warning("spend.refresh_failed", exc_info=True)
            return
        self.spend, self.flagged = paid_spend(totals, self.settings.openai_daily_budget_usd), flagged

    async def _refresh_budget(self, now: float) -> None:
        try:
            with untraced():
                volume = await job_volume(self.pool)
        except Exception:  # the database answered this check's count: a failure here is not an outage
            log.warning("budget.refresh_failed", exc_info=True)
            return
        settings, self._budget_at = self.settings, now
        self.budget = estimate(
            jobs_month=jobs_per_month(volume.jobs, volume.observed_s),
            requests_per_job=settings.sentry_requests_per_job,
            spans_per_request=settings.sentry_spans_per_request,
            sample_rate=settings.sentry_traces_sample_rate,
            free_spans=settings.sentry_free_spans,
        )

    async def run(self) -> None:
        """Check every `check_interval` seconds until `stop`; a failing check is logged, never fatal."""
        while not await self._stopped_within(self.settings.check_interval):
            try:
                await self.check()
            except Exception:
                log.exception("check.failed")

    def stop(self) -> None:
        """Finish the check under way, then return: cancelling one mid-RPC can leave an AMQP channel
        half open, and the broker then closes the whole connection (CHANNEL_ERROR)."""
        self._stop.set()

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True
