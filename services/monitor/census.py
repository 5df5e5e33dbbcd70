"""What PostgreSQL says right now: jobs by status and tier, and how many jobs a month brings."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.domain import JobStatus, Tier

QUERY_TIMEOUT_S = 5.0
VOLUME_DAYS = 30


async def job_counts(pool: asyncpg.Pool) -> dict[tuple[JobStatus, Tier], int]:
    # An index-only scan of idx_jobs_status (plus the tier) on a vacuumed table; run once per check.
    rows = await pool.fetch(
        "SELECT status, tier, count(*) AS n FROM jobs GROUP BY status, tier", timeout=QUERY_TIMEOUT_S
    )
    return {(JobStatus(row["status"]), Tier(row["tier"])): int(row["n"]) for row in rows}


@dataclass(frozen=True)
class Volume:
    jobs: int
    observed_s: float  # the span those jobs came in: 30 days, or less on a young system


async def job_volume(pool: asyncpg.Pool, *, days: int = VOLUME_DAYS) -> Volume:
    row = await pool.fetchrow(
        """
        SELECT count(*) AS jobs, extract(epoch FROM now() - min(created_at)) AS observed_s
        FROM jobs WHERE created_at > now() - make_interval(days => $1)
        """,
        days,
        timeout=QUERY_TIMEOUT_S,
    )
    assert row is not None
    return Volume(int(row["jobs"]), float(row["observed_s"] or 0.0))
