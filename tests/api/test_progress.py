"""GET /jobs/{id}: queue position, ETA and timings, built from histories driven straight through jobstate."""

from __future__ import annotations

import statistics
import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from shared import jobs, jobstate
from shared.domain import Style, Tier
from shared.events import EventType
from shared.jobs import Job, NewJob
from tests.conftest import TEST_OWNER, record_asset

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import ApiFactory

pytestmark = pytest.mark.integration


async def new_job(pool: asyncpg.Pool, tier: Tier = Tier.FREE, *, owner: str = TEST_OWNER) -> Job:
    asset = await record_asset(pool, owner=owner)
    job = await jobs.insert_job(pool, NewJob(asset.id, "Test enhancement", tier, Style.DEFAULT, owner))
    assert job is not None
    return job


async def read(api: Client, job: Job) -> dict[str, Any]:
    response = await api.get(f"/jobs/{job.id}")
    assert response.status == 200, await response.text()
    found: dict[str, Any] = (await response.json())["job"]
    return found


async def succeed(pool: asyncpg.Pool, job: Job, *, worker_id: str) -> None:
    done = await jobstate.succeed(
        pool,
        job.id,
        output_key=f"{job.id}.jpg",
        content_type="image/jpeg",
        cost=Decimal("0"),
        engine="local",
        worker_id=worker_id,
    )
    assert done is not None


async def finished(pool: asyncpg.Pool, tier: Tier, *, processing_s: float, ago_s: float) -> None:
    """A job of `tier` that succeeded `ago_s` seconds ago after `processing_s` seconds of work."""
    job = await new_job(pool, tier)
    assert await jobstate.start(pool, job.id, worker_id="w-history") is not None
    await succeed(pool, job, worker_id="w-history")
    await pool.execute(
        """
        WITH done AS (
            UPDATE job_events SET created_at = now() - make_interval(secs => $2)
            WHERE job_id = $1 AND type = 'job.succeeded' RETURNING created_at
        )
        UPDATE jobs SET completed_at = done.created_at, started_at = done.created_at - make_interval(secs => $3)
        FROM done WHERE jobs.id = $1
        """,
        job.id,
        ago_s,
        processing_s,
    )


async def pace_of(pool: asyncpg.Pool, tier: Tier) -> tuple[float, float]:
    """The median processing time and throughput of the tier's successes, computed here from the stored rows."""
    rows = await pool.fetch(
        """
        SELECT jobs.started_at, events.created_at AS completed_at FROM job_events AS events
        JOIN jobs ON jobs.id = events.job_id WHERE events.type = 'job.succeeded' AND jobs.tier = $1
          AND events.created_at > now() - interval '1 hour'
        """,
        tier.value,
    )
    median = statistics.median((row["completed_at"] - row["started_at"]).total_seconds() for row in rows)
    completions = sorted(row["completed_at"] for row in rows)
    return median, (len(rows) - 1) / (completions[-1] - completions[0]).total_seconds()


def seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


async def test_queue_position_counts_the_earlier_queued_jobs_of_the_same_tier(api: Client, pool: asyncpg.Pool) -> None:
    first = await new_job(pool)
    premium = await new_job(pool, Tier.PREMIUM)
    second = await new_job(pool)
    third = await new_job(pool)

    assert [(await read(api, job))["queue_position"] for job in (first, second, third, premium)] == [0, 1, 2, 0]


async def test_a_running_job_is_at_position_0_and_no_longer_ahead_of_anyone(api: Client, pool: asyncpg.Pool) -> None:
    first, second = await new_job(pool), await new_job(pool)
    assert await jobstate.start(pool, first.id, worker_id="w-1") is not None

    assert (await read(api, first))["queue_position"] == 0
    assert (await read(api, second))["queue_position"] == 0


async def test_a_held_job_waits_behind_every_unheld_one_of_its_tier(
    api_factory: ApiFactory, pool: asyncpg.Pool
) -> None:
    # The api's relay releases an owner's held jobs while it has room in the queue (its fair share), at
    # any moment: with a share of one and the unheld job queued first, the owner never has room.
    api = await api_factory(fair_share_queued=1)
    unheld = await new_job(pool)
    held_early, held_late = await new_job(pool), await new_job(pool)
    await pool.execute(
        "UPDATE jobs SET held = true, created_at = $2::timestamptz - interval '1 second' WHERE id = $1",
        held_early.id,
        unheld.created_at,
    )
    await pool.execute("UPDATE jobs SET held = true WHERE id = $1", held_late.id)

    assert (await read(api, unheld))["queue_position"] == 0  # the held one is not in the broker's queue yet
    assert (await read(api, held_early))["queue_position"] == 1
    assert (await read(api, held_late))["queue_position"] == 2


async def test_there_is_no_eta_without_history(api: Client, pool: asyncpg.Pool) -> None:
    queued = await new_job(pool)
    first, second = await new_job(pool, Tier.PREMIUM), await new_job(pool, Tier.PREMIUM)
    assert await jobstate.start(pool, first.id, worker_id="w-1") is not None
    await finished(pool, Tier.FREE, processing_s=10, ago_s=30)  # another tier's history says nothing of premium

    for job in (first, second):
        assert (await read(api, job))["eta_seconds"] is None
    assert (await read(api, queued))["eta_seconds"] == pytest.approx(10)


async def test_the_eta_follows_the_tiers_recent_pace(api: Client, pool: asyncpg.Pool) -> None:
    for processing_s, ago_s in ((10, 100), (30, 60), (20, 20)):
        await finished(pool, Tier.FREE, processing_s=processing_s, ago_s=ago_s)
    await finished(pool, Tier.FREE, processing_s=500, ago_s=7200)  # outside the window: not counted
    running, head, behind = await new_job(pool), await new_job(pool), await new_job(pool)
    assert await jobstate.start(pool, running.id, worker_id="w-1") is not None
    await pool.execute("UPDATE jobs SET started_at = now() - interval '5 seconds' WHERE id = $1", running.id)
    median, throughput = await pace_of(pool, Tier.FREE)

    assert median == pytest.approx(20)
    assert throughput == pytest.approx(2 / 80, rel=0.01)  # each row was written at its own now()
    assert (await read(api, head))["eta_seconds"] == pytest.approx(median)
    assert (await read(api, behind))["eta_seconds"] == pytest.approx(1 / throughput + median)
    assert (await read(api, running))["eta_seconds"] == pytest.approx(median - 5, abs=5)  # time passes as we ask


async def test_timings_keep_the_first_start_and_list_every_attempt(api: Client, pool: asyncpg.Pool) -> None:
    job = await new_job(pool)
    assert await jobstate.start(pool, job.id, worker_id="w-1") is not None
    retried = await jobstate.schedule_retry(pool, job.id, code="engine_timeout", message="slow", delay_ms=10)
    assert retried is not None
    assert await jobstate.start(pool, job.id, worker_id="w-2") is not None
    await succeed(pool, job, worker_id="w-2")
    stored = await pool.fetchrow("SELECT created_at, completed_at FROM jobs WHERE id = $1", job.id)
    assert stored is not None
    events = [row for row in await jobs.history(pool, job.id) if row["type"] != EventType.JOB_QUEUED.value]
    starts, ends = events[0::2], events[1::2]

    found = await read(api, job)

    timings = found["timings"]
    assert timings["queue_wait_s"] == pytest.approx(seconds(stored["created_at"], starts[0]["created_at"]))
    assert timings["total_s"] == pytest.approx(seconds(stored["created_at"], stored["completed_at"]))
    spent = sum(seconds(start["created_at"], end["created_at"]) for start, end in zip(starts, ends, strict=True))
    assert timings["processing_s"] == pytest.approx(spent)
    attempts = timings["attempts"]
    assert [(a["number"], a["worker_id"], a["outcome"], a["error_code"]) for a in attempts] == [
        (1, "w-1", "retrying", "engine_timeout"),
        (2, "w-2", "succeeded", None),
    ]
    assert [datetime.fromisoformat(a["started_at"]) for a in attempts] == [row["created_at"] for row in starts]
    assert [datetime.fromisoformat(a["ended_at"]) for a in attempts] == [row["created_at"] for row in ends]
    assert (found["queue_position"], found["eta_seconds"]) == (None, None)


async def test_a_takeover_ends_the_previous_attempt_as_lost(api: Client, pool: asyncpg.Pool) -> None:
    job = await new_job(pool)
    assert await jobstate.start(pool, job.id, worker_id="w-1") is not None
    assert await jobstate.start(pool, job.id, worker_id="w-2", takeover=True) is not None

    running = (await read(api, job))["timings"]
    assert [(a["worker_id"], a["outcome"]) for a in running["attempts"]] == [("w-1", "lost"), ("w-2", None)]
    assert running["attempts"][1]["ended_at"] is None
    assert running["total_s"] is None

    assert await jobstate.fail(pool, job.id, code="corrupt_image", message="truncated") is not None
    failed = (await read(api, job))["timings"]
    assert [(a["outcome"], a["error_code"]) for a in failed["attempts"]] == [
        ("lost", None),
        ("failed", "corrupt_image"),
    ]


async def test_a_queued_job_has_no_timings_yet(api: Client, pool: asyncpg.Pool) -> None:
    found = await read(api, await new_job(pool))

    assert found["timings"] == {"queue_wait_s": None, "processing_s": None, "total_s": None, "attempts": []}


async def test_lists_leave_progress_out(api: Client, pool: asyncpg.Pool) -> None:
    await new_job(pool)

    response = await api.get("/jobs")

    (listed,) = (await response.json())["jobs"]
    assert (listed["queue_position"], listed["eta_seconds"], listed["timings"]) == (None, None, None)


async def test_another_owners_job_is_still_not_found(api: Client, pool: asyncpg.Pool) -> None:
    theirs = await new_job(pool, owner=f"other-{uuid.uuid4().hex[:6]}")

    response = await api.get(f"/jobs/{theirs.id}")

    assert response.status == 404
