"""The job state machine on the real PostgreSQL: conditional updates, one history row per change, races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import asyncpg
import pytest

from shared import jobs, jobstate
from shared.db import Connection, create_pool
from shared.domain import JobStatus, Style, Tier
from shared.jobs import Job, NewJob
from tests.conftest import TEST_OWNER, record_asset

pytestmark = pytest.mark.integration

Change = Callable[[Connection, uuid.UUID], Awaitable[Job | None]]


@pytest.fixture
async def db(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool configured as the services configure theirs (jsonb codec); `pool` truncated the tables."""
    services_pool = await create_pool(database_url, min_size=2, max_size=4)
    yield services_pool
    await services_pool.close()


@pytest.fixture
async def asset_id(db: asyncpg.Pool) -> uuid.UUID:
    return (await record_asset(db)).id


async def new_job(db: asyncpg.Pool, asset_id: uuid.UUID) -> Job:
    async with db.acquire() as connection, connection.transaction():
        job = await jobs.insert_job(
            connection, NewJob(asset_id, "Test enhancement", Tier.FREE, Style.DEFAULT, TEST_OWNER)
        )
        assert job is not None
        return job


async def history(db: asyncpg.Pool, job_id: uuid.UUID) -> list[tuple[str, str | None, str]]:
    return [(row["type"], row["from_status"], row["to_status"]) for row in await jobs.history(db, job_id)]


async def start(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return await jobstate.start(connection, job_id, worker_id="w-1")


async def take_over(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return await jobstate.start(connection, job_id, worker_id="w-2", takeover=True)


async def succeed(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return await jobstate.succeed(
        connection, job_id, output_key=f"{job_id}.jpg", content_type="image/jpeg", cost=Decimal("0.01"), engine="local"
    )


async def fail(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return await jobstate.fail(connection, job_id, code="corrupt_image", message="truncated")


async def retry(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return await jobstate.schedule_retry(connection, job_id, code="engine_timeout", message="slow", delay_ms=1000)


async def cancel(connection: Connection, job_id: uuid.UUID) -> Job | None:
    return await jobstate.cancel(connection, job_id)


CHANGES: dict[str, Change] = {
    "start": start,
    "take over": take_over,
    "succeed": succeed,
    "fail": fail,
    "retry": retry,
    "cancel": cancel,
}
# Where each change leads a job from the statuses it is allowed to leave (DESIGN §2).
ALLOWED: dict[str, dict[JobStatus, JobStatus]] = {
    "start": {JobStatus.QUEUED: JobStatus.PROCESSING},
    "take over": {JobStatus.QUEUED: JobStatus.PROCESSING, JobStatus.PROCESSING: JobStatus.PROCESSING},
    "succeed": {JobStatus.PROCESSING: JobStatus.SUCCEEDED},
    "fail": {JobStatus.QUEUED: JobStatus.FAILED, JobStatus.PROCESSING: JobStatus.FAILED},
    "retry": {JobStatus.PROCESSING: JobStatus.QUEUED},
    "cancel": {JobStatus.QUEUED: JobStatus.CANCELED},
}
# How to bring a fresh (queued) job to each status.
PATHS: dict[JobStatus, tuple[Change, ...]] = {
    JobStatus.QUEUED: (),
    JobStatus.PROCESSING: (start,),
    JobStatus.SUCCEEDED: (start, succeed),
    JobStatus.FAILED: (start, fail),
    JobStatus.CANCELED: (cancel,),
}


async def job_in(db: asyncpg.Pool, asset_id: uuid.UUID, status: JobStatus) -> Job:
    job = await new_job(db, asset_id)
    async with db.acquire() as connection:
        for change in PATHS[status]:
            moved = await change(connection, job.id)
            assert moved is not None
            job = moved
    assert job.status is status
    return job


async def test_a_new_job_is_queued_with_its_first_history_row(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    job = await new_job(db, asset_id)

    assert (job.status, job.attempts, job.started_at, job.completed_at) == (JobStatus.QUEUED, 0, None, None)
    assert await history(db, job.id) == [("job.queued", None, "queued")]


async def test_the_happy_path_records_every_transition(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    job = await new_job(db, asset_id)
    async with db.acquire() as connection:
        started = await start(connection, job.id)
        done = await succeed(connection, job.id)

    assert started is not None
    assert (started.status, started.attempts, started.worker_id) == (JobStatus.PROCESSING, 1, "w-1")
    assert started.started_at is not None
    assert done is not None
    assert (done.status, done.output_key, done.cost) == (JobStatus.SUCCEEDED, f"{job.id}.jpg", Decimal("0.01"))
    assert done.completed_at is not None
    assert await history(db, job.id) == [
        ("job.queued", None, "queued"),
        ("job.started", "queued", "processing"),
        ("job.succeeded", "processing", "succeeded"),
    ]


async def test_a_retry_goes_back_to_queued_and_counts_the_next_attempt(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    job = await new_job(db, asset_id)
    async with db.acquire() as connection:
        await start(connection, job.id)
        queued = await retry(connection, job.id)
        again = await start(connection, job.id)

    assert queued is not None
    assert (queued.status, queued.attempts, queued.error_code, queued.worker_id) == (
        JobStatus.QUEUED,
        1,
        "engine_timeout",
        None,
    )
    assert again is not None
    assert (again.status, again.attempts) == (JobStatus.PROCESSING, 2)
    assert [(old, new) for _, old, new in await history(db, job.id)] == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "queued"),
        ("queued", "processing"),
    ]


@pytest.mark.parametrize("last", ["succeed", "fail"])
async def test_billed_attempts_add_up_whether_they_failed_or_not(
    db: asyncpg.Pool, asset_id: uuid.UUID, last: str
) -> None:
    job = await new_job(db, asset_id)
    async with db.acquire() as connection:
        await start(connection, job.id)
        await jobstate.schedule_retry(
            connection, job.id, code="openai_unavailable", message="429", delay_ms=1000, cost=Decimal("0.2")
        )
        await start(connection, job.id)
        if last == "succeed":
            done = await succeed(connection, job.id)  # billed 0.01
        else:
            done = await jobstate.fail(connection, job.id, code="openai_bad_output", message="x", cost=Decimal("0.01"))

    assert done is not None
    assert done.cost == Decimal("0.21")


@pytest.mark.parametrize("status", list(JobStatus), ids=str)
@pytest.mark.parametrize("name", list(CHANGES))
async def test_each_change_moves_only_from_its_allowed_statuses(
    db: asyncpg.Pool, asset_id: uuid.UUID, status: JobStatus, name: str
) -> None:
    job = await job_in(db, asset_id, status)
    before = await history(db, job.id)
    row_before = await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job.id)

    async with db.acquire() as connection:
        moved = await CHANGES[name](connection, job.id)

    after = await history(db, job.id)
    target = ALLOWED[name].get(status)
    if target is None:
        assert moved is None
        assert after == before
        assert await db.fetchrow("SELECT * FROM jobs WHERE id = $1", job.id) == row_before
    else:
        assert moved is not None
        assert moved.status is target
        assert len(after) == len(before) + 1
        assert after[-1][1:] == (status.value, target.value)


async def test_a_job_cannot_succeed_twice(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    job = await job_in(db, asset_id, JobStatus.SUCCEEDED)

    async with db.acquire() as connection:
        assert await succeed(connection, job.id) is None
        assert await take_over(connection, job.id) is None  # no way back to processing either

    assert [new for _, _, new in await history(db, job.id)].count("succeeded") == 1
    current = await jobs.get_job(db, job.id)
    assert current is not None
    assert (current.status, current.attempts) == (JobStatus.SUCCEEDED, 1)


async def test_an_unknown_job_moves_nowhere(db: asyncpg.Pool) -> None:
    async with db.acquire() as connection:
        for change in CHANGES.values():
            assert await change(connection, uuid.uuid4()) is None
    assert await db.fetchval("SELECT count(*) FROM job_events") == 0


async def _race(db: asyncpg.Pool, job_id: uuid.UUID, *changes: Change) -> list[Job | None]:
    """Run the changes at once, each on its own connection (its own transaction)."""

    async def one(change: Change) -> Job | None:
        async with db.acquire() as connection:
            return await change(connection, job_id)

    return list(await asyncio.gather(*(one(change) for change in changes)))


async def test_two_concurrent_starts_of_one_job_have_exactly_one_winner(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    for _ in range(10):
        job = await new_job(db, asset_id)

        results = await _race(db, job.id, start, start)

        winners = [result for result in results if result is not None]
        assert len(winners) == 1
        assert winners[0].attempts == 1
        assert await history(db, job.id) == [("job.queued", None, "queued"), ("job.started", "queued", "processing")]


async def test_cancel_racing_start_has_exactly_one_winner(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    for _ in range(10):
        job = await new_job(db, asset_id)

        results = await _race(db, job.id, start, cancel)

        winners = [result for result in results if result is not None]
        assert len(winners) == 1
        events = await history(db, job.id)
        assert len(events) == 2
        assert events[-1][1:] == ("queued", winners[0].status.value)


async def test_concurrent_finishes_have_exactly_one_winner(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    for _ in range(10):
        job = await job_in(db, asset_id, JobStatus.PROCESSING)

        results = await _race(db, job.id, succeed, succeed, fail)

        winners = [result for result in results if result is not None]
        assert len(winners) == 1
        terminal = [new for _, _, new in await history(db, job.id) if new in ("succeeded", "failed")]
        assert terminal == [winners[0].status.value]


async def finish_as(connection: Connection, job_id: uuid.UUID, worker_id: str) -> Job | None:
    return await jobstate.succeed(
        connection,
        job_id,
        output_key="x.jpg",
        content_type="image/jpeg",
        cost=Decimal(0),
        engine="local",
        worker_id=worker_id,
    )


async def test_a_worker_that_lost_the_job_can_no_longer_finish_it(db: asyncpg.Pool, asset_id: uuid.UUID) -> None:
    job = await job_in(db, asset_id, JobStatus.PROCESSING)  # held by w-1
    async with db.acquire() as connection:
        assert await take_over(connection, job.id) is not None  # w-2 now holds it

        assert await finish_as(connection, job.id, "w-1") is None
        assert await jobstate.fail(connection, job.id, code="late", message="late", worker_id="w-1") is None
        retried = await jobstate.schedule_retry(
            connection, job.id, code="late", message="late", delay_ms=1, worker_id="w-1"
        )
        assert retried is None
        finished = await finish_as(connection, job.id, "w-2")

    assert finished is not None
    assert (finished.status, finished.attempts, finished.worker_id) == (JobStatus.SUCCEEDED, 2, "w-2")
    assert [(old, new) for _, old, new in await history(db, job.id)] == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "processing"),
        ("processing", "succeeded"),
    ]
