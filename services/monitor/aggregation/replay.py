"""Rebuilding the last hour from PostgreSQL at start-up, so a restarted monitor shows what it showed before."""

from __future__ import annotations

import time

import asyncpg
import structlog

from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.census import job_counts
from services.monitor.aggregation.steps import Step, from_row

log = structlog.get_logger()
REPLAY_TIMEOUT_S = 60.0

# Every job_events row of the last `$1` seconds, with what its event would have carried: the job's tier
# and creation time, the attempt (starts so far) and when that attempt started. The window runs over each
# job's whole history, so a job started 61 minutes ago and finished 59 minutes ago still has its start.
REPLAY = """
WITH recent AS (
    SELECT DISTINCT job_id FROM job_events WHERE created_at > now() - make_interval(secs => $1)
), history AS (
    SELECT e.id, e.job_id, e.type, e.details, e.created_at, j.tier, j.created_at AS queued_at,
           count(*) FILTER (WHERE e.type = 'job.started') OVER w AS attempt,
           max(e.created_at) FILTER (WHERE e.type = 'job.started') OVER w AS started_at
    FROM job_events e JOIN jobs j ON j.id = e.job_id
    WHERE e.job_id IN (SELECT job_id FROM recent)
    WINDOW w AS (PARTITION BY e.job_id ORDER BY e.id)
)
SELECT * FROM history WHERE created_at > now() - make_interval(secs => $1) ORDER BY id
"""


async def replay(pool: asyncpg.Pool, *, seconds: float = 3600.0) -> list[Step]:
    rows = await pool.fetch(REPLAY, seconds, timeout=REPLAY_TIMEOUT_S)
    return [step for row in rows if (step := from_row(dict(row))) is not None]


async def rebuild(pool: asyncpg.Pool, aggregator: Aggregator) -> int:
    """Feed the last hour and the current counts into a fresh aggregator; returns the steps replayed."""
    steps = await replay(pool)
    now = time.time()
    for step in steps:
        aggregator.record(step, now, replayed=True)
    aggregator.reconcile(await job_counts(pool))
    log.info("monitor.rebuilt", steps=len(steps))
    return len(steps)
