"""Where a job stands: its place in its tier's queue and an estimate of when it will be done.

A tier's work queue is first in, first out, and a job held over its owner's fair share
(shared/fairshare.py) is not in it yet: whatever is in the queue when it is released starts first.
So the jobs ahead of an unheld job are the unheld queued jobs of its tier created before it; ahead of
a held job are all the unheld ones of its tier and the held ones created before it (an approximation:
releases follow each owner's starts, not creation order across owners). Tiers are separate queues.
A job waiting out a retry keeps its creation time, so it counts as ahead of newer jobs, which it is
once republished.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared import jobs
from shared.db import Queryable
from shared.domain import JobStatus, Tier
from shared.jobs import Job
from shared.timings import Timings, timings

# How far back, and how many of a tier's successes, the estimate looks at: enough for a steady median,
# few enough that one GET reads a few hundred index entries at most.
WINDOW_S = 3600.0
SAMPLE = 200

# Each count reads the index entries of the queued jobs ahead, and only those (idx_jobs_tier_queued,
# migration 0007): a count costs its length.
_AHEAD_OF_UNHELD = """
SELECT count(*) FROM jobs
WHERE status = 'queued' AND tier = $1 AND NOT held AND (created_at, id) < ($2, $3)
"""
_AHEAD_OF_HELD = """
SELECT (SELECT count(*) FROM jobs WHERE status = 'queued' AND tier = $1 AND NOT held)
     + (SELECT count(*) FROM jobs WHERE status = 'queued' AND tier = $1 AND held AND (created_at, id) < ($2, $3))
"""

# Walks idx_job_events_created_at newest first and stops after SAMPLE successes of the tier; the
# job's started_at is its last (the successful) attempt's start.
_RECENT = """
WITH recent AS (
    SELECT events.created_at AS completed_at, jobs.started_at
    FROM job_events AS events JOIN jobs ON jobs.id = events.job_id
    WHERE events.type = 'job.succeeded' AND jobs.tier = $1
      AND events.created_at > now() - make_interval(secs => $2)
    ORDER BY events.created_at DESC
    LIMIT $3
)
SELECT count(*) AS finished,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at)) AS median_s,
       extract(epoch FROM max(completed_at) - min(completed_at)) AS span_s,
       now() AS now
FROM recent
"""


@dataclass(frozen=True)
class Pace:
    """How a tier has been going lately, measured on its recent successes."""

    finished: int
    median_processing_s: float | None
    # Completions per second between the first and last of the sample; None with fewer than two.
    throughput: float | None
    now: datetime


async def queue_position(connection: Queryable, job: Job) -> int | None:
    """How many jobs of its tier will start before it: 0 once it runs, None once it is done."""
    if job.status is JobStatus.PROCESSING:
        return 0
    if job.status is not JobStatus.QUEUED:
        return None
    statement = _AHEAD_OF_HELD if job.held else _AHEAD_OF_UNHELD
    return int(await connection.fetchval(statement, job.tier.value, job.created_at, job.id))


async def pace(connection: Queryable, tier: Tier, *, window_s: float = WINDOW_S, sample: int = SAMPLE) -> Pace:
    """The tier's pace over its last `sample` successes within `window_s` (and the database's clock)."""
    row = await connection.fetchrow(_RECENT, tier.value, window_s, sample)
    assert row is not None  # an aggregate always answers one row
    finished, median, span = int(row["finished"]), row["median_s"], row["span_s"]
    throughput = (finished - 1) / float(span) if finished >= 2 and span else None
    return Pace(finished, float(median) if median is not None else None, throughput, row["now"])


def eta_seconds(job: Job, position: int | None, pace: Pace) -> float | None:
    """Seconds until the job is likely done, from its tier's recent pace; None when unknown.

    queued:     position / throughput + median processing  (the first term is 0 at the head of the queue)
    processing: max(0, median processing - seconds since this attempt started)

    `median processing` is the median of completed_at - started_at (the successful attempt) over the
    tier's sample; `throughput` is (n - 1) / (last completion - first completion) over it. Without a
    median (no success in the window), or without a throughput for a job that has others ahead, there is
    no estimate rather than a made-up one.
    """
    median = pace.median_processing_s
    if median is None or position is None:
        return None
    if job.status is JobStatus.PROCESSING and job.started_at is not None:
        return max(0.0, median - (pace.now - job.started_at).total_seconds())
    if job.status is not JobStatus.QUEUED:
        return None
    if position == 0:
        return median
    return position / pace.throughput + median if pace.throughput else None


@dataclass(frozen=True)
class Progress:
    queue_position: int | None
    eta_seconds: float | None
    timings: Timings


async def progress(connection: Queryable, job: Job) -> Progress:
    """All of the above for one job: two or three small queries (none of the pace's once it is done)."""
    position = await queue_position(connection, job)
    eta = eta_seconds(job, position, await pace(connection, job.tier)) if position is not None else None
    return Progress(position, eta, timings(job, await jobs.history(connection, job.id)))


async def batch_eta_seconds(connection: Queryable, batch_jobs: Sequence[Job]) -> float | None:
    """Seconds until a batch's last job is likely done: the latest of the estimates of, per tier, its
    job furthest back in the queue and its job that started last (the others finish before those).
    None once every job is done, or when one of those has no estimate."""
    last: dict[tuple[Tier, JobStatus], Job] = {}
    for job in batch_jobs:
        if job.status is JobStatus.QUEUED:
            last[(job.tier, job.status)] = job  # in queue order: the last one seen is the furthest back
        elif job.status is JobStatus.PROCESSING:
            latest = last.get((job.tier, job.status))
            if latest is None or (job.started_at or job.created_at) > (latest.started_at or latest.created_at):
                last[(job.tier, job.status)] = job
    if not last:
        return None
    paces = {tier: await pace(connection, tier) for tier in {tier for tier, _ in last}}
    etas = [eta_seconds(job, await queue_position(connection, job), paces[job.tier]) for job in last.values()]
    return None if any(eta is None for eta in etas) else max(eta for eta in etas if eta is not None)
