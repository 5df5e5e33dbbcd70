"""What the aggregator reports: window statistics and the per-minute series, built from buckets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.monitor.aggregation.buckets import Bucket
from services.monitor.aggregation.latency import Metric, Percentiles, merged
from services.monitor.aggregation.steps import Kind
from shared.domain import Tier

SCOPES: tuple[str, ...] = ("all", *(tier.value for tier in Tier))


def moment(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class WindowStats:
    window: str
    seconds: int
    queued: int
    started: int
    succeeded: int
    failed: int
    retried: int
    canceled: int
    throughput_per_min: float  # finished jobs (succeeded + failed) per minute
    success_rate: float | None  # succeeded / finished
    failure_rate: float | None  # failed / finished
    error_rate: float | None  # (failed + retried) / attempts that ended
    errors_by_code: dict[str, int]
    latency: dict[str, dict[str, Percentiles]]  # metric -> "all" | tier -> percentiles

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True)
class MinutePoint:
    start: datetime
    queued: int
    succeeded: int
    failed: int
    p50: float | None  # end to end, seconds
    p95: float | None


@dataclass(frozen=True)
class StatsSnapshot:
    at: datetime
    jobs: dict[str, int]  # current jobs by status
    jobs_by_tier: dict[str, dict[str, int]]
    windows: dict[str, WindowStats]
    series: list[MinutePoint]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _latency(buckets: Sequence[Bucket], metric: Metric) -> dict[str, Percentiles]:
    per_tier = {
        tier: merged(b.sketches[metric, tier] for b in buckets if (metric, tier) in b.sketches) for tier in Tier
    }
    out = {tier.value: Percentiles.of(sketch) for tier, sketch in per_tier.items()}
    return {"all": Percentiles.of(merged(per_tier.values())), **out}


def window_stats(name: str, seconds: int, buckets: Sequence[Bucket]) -> WindowStats:
    counts: Counter[Kind] = Counter()
    errors: Counter[str] = Counter()
    for bucket in buckets:
        for (kind, _), n in bucket.counts.items():
            counts[kind] += n
        errors.update(bucket.errors)
    succeeded, failed, retried = counts[Kind.SUCCEEDED], counts[Kind.FAILED], counts[Kind.RETRYING]
    finished = succeeded + failed
    return WindowStats(
        window=name,
        seconds=seconds,
        queued=counts[Kind.QUEUED],
        started=counts[Kind.STARTED],
        succeeded=succeeded,
        failed=failed,
        retried=retried,
        canceled=counts[Kind.CANCELED],
        throughput_per_min=round(finished / (seconds / 60), 3),
        success_rate=_ratio(succeeded, finished),
        failure_rate=_ratio(failed, finished),
        error_rate=_ratio(failed + retried, finished + retried),
        errors_by_code=dict(errors.most_common()),
        latency={metric.value: _latency(buckets, metric) for metric in Metric},
    )


def minute_point(start: float, bucket: Bucket | None) -> MinutePoint:
    if bucket is None:
        return MinutePoint(moment(start), 0, 0, 0, None, None)
    by_kind: Counter[Kind] = Counter()
    for (kind, _), n in bucket.counts.items():
        by_kind[kind] += n
    e2e = Percentiles.of(merged(s for (metric, _), s in bucket.sketches.items() if metric is Metric.END_TO_END))
    return MinutePoint(
        moment(start), by_kind[Kind.QUEUED], by_kind[Kind.SUCCEEDED], by_kind[Kind.FAILED], e2e.p50, e2e.p95
    )
