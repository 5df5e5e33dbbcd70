"""Job steps in, rolling statistics out; pure and memory-bounded, `now` always passed in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from services.monitor.aggregation.bounded import RecentMap, RecentSet
from services.monitor.aggregation.buckets import Bucket, RollingBuckets
from services.monitor.aggregation.census import StatusCounts
from services.monitor.aggregation.latency import CumulativeHistogram, Metric
from services.monitor.aggregation.snapshot import StatsSnapshot, minute_point, moment, window_stats
from services.monitor.aggregation.steps import Kind, Step
from shared.domain import JobStatus, Tier

WINDOWS: dict[str, int] = {"1m": 60, "5m": 300, "1h": 3600}
FINE_WIDTH, FINE_COUNT = 10.0, 30  # the 1 min and 5 min windows, in 10 s steps
COARSE_WIDTH, COARSE_COUNT = 60.0, 60  # the 1 h window and the charts, per minute
ERROR_KINDS = frozenset({Kind.FAILED, Kind.RETRYING})


class Aggregator:
    """Counts, error codes and latency sketches over the last hour, plus totals since start.

    Steps are keyed (kind, job, attempt), so a redelivered event, or one already replayed from
    PostgreSQL at start-up, is counted once. Memory is bounded by the bucket spans and `memory`.
    """

    def __init__(self, *, memory: int = 50_000) -> None:
        self.fine = RollingBuckets(FINE_WIDTH, FINE_COUNT, Bucket)
        self.coarse = RollingBuckets(COARSE_WIDTH, COARSE_COUNT, Bucket)
        self.statuses = StatusCounts()
        # Since this process started, from live events only: Prometheus counters must not jump on restart.
        self.totals: Counter[tuple[Kind, Tier]] = Counter()
        self.histograms = {(metric, tier): CumulativeHistogram() for metric in Metric for tier in Tier}
        self.duplicates = 0
        self._seen: RecentSet[bytes] = RecentSet(memory)  # about 110 bytes each
        self._starts: RecentMap[bytes, float] = RecentMap(memory // 5)  # jobs in flight
        self._snapshot: tuple[float, StatsSnapshot] | None = None  # the last one built, and for when

    @property
    def remembered(self) -> int:
        """Step keys held for de-duplication: at most `memory`."""
        return len(self._seen)

    def record(self, step: Step, now: float, *, replayed: bool = False) -> bool:
        """Count one step; False when it was counted before."""
        if not self._seen.add(step.key):
            self.duplicates += 1
            return False
        latencies = self._latencies(step)
        for buckets in (self.fine, self.coarse):
            bucket = buckets.bucket(step.at, now)
            if bucket is None:
                continue
            bucket.counts[step.kind, step.tier] += 1
            if step.kind in ERROR_KINDS:
                bucket.errors[step.error_code or "unknown"] += 1
            for metric, seconds in latencies:
                bucket.observe(metric, step.tier, seconds)
        if not replayed:
            self._count_live(step, latencies)
        return True

    def _count_live(self, step: Step, latencies: list[tuple[Metric, float]]) -> None:
        self.statuses.apply(step)
        self.totals[step.kind, step.tier] += 1
        for metric, seconds in latencies:
            self.histograms[metric, step.tier].observe(max(seconds, 0.0))

    def _latencies(self, step: Step) -> list[tuple[Metric, float]]:
        if step.kind is Kind.STARTED:
            self._starts.set(step.job_id.bytes, step.at)
            # Later attempts also waited out a retry delay, which is not queue wait.
            if step.attempt == 1 and step.queued_at is not None:
                return [(Metric.QUEUE_WAIT, step.at - step.queued_at)]
            return []
        started = self._starts.pop(step.job_id.bytes)
        if step.kind not in (Kind.SUCCEEDED, Kind.FAILED):
            return []
        started = step.started_at if step.started_at is not None else started
        processing = step.at - started if started is not None else step.processing_s
        found = [] if processing is None else [(Metric.PROCESSING, processing)]
        if step.queued_at is not None:
            found.append((Metric.END_TO_END, step.at - step.queued_at))
        return found

    def reconcile(self, counts: Mapping[tuple[JobStatus, Tier], int]) -> None:
        """Replace the jobs-by-status counts with PostgreSQL's."""
        self.statuses.replace(counts)

    def snapshot(self, now: float, *, max_age: float = 0.0) -> StatsSnapshot:
        """The statistics as of `now`; the previous ones instead while they are less than `max_age` seconds old.

        Building one merges every window's sketches (a few milliseconds): readers that may poll many times
        a second (the dashboard, in as many tabs as operators open) then cost one build per `max_age`.
        """
        if self._snapshot is not None and 0 <= now - self._snapshot[0] < max_age:
            return self._snapshot[1]
        snapshot = self._build(now)
        self._snapshot = (now, snapshot)
        return snapshot

    def _build(self, now: float) -> StatsSnapshot:
        windows = {
            name: window_stats(name, seconds, self._buckets_for(seconds).window(now, seconds))
            for name, seconds in WINDOWS.items()
        }
        return StatsSnapshot(
            at=moment(now),
            jobs=self.statuses.by_status(),
            jobs_by_tier=self.statuses.by_tier(),
            windows=windows,
            series=[minute_point(start, bucket) for start, bucket in self.coarse.slots(now)],
        )

    def _buckets_for(self, seconds: int) -> RollingBuckets[Bucket]:
        return self.fine if seconds <= FINE_WIDTH * FINE_COUNT else self.coarse
