"""Intake: jobs submitted together share one statement, and each is queued as if it had come alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared.broker import Broker
from shared.domain import Style, Tier
from shared.intake import PARALLEL_BATCHES, Intake
from shared.jobs import Job, NewJob
from shared.outbox import Publisher
from tests.conftest import record_asset
from tests.harness.poll import poll

pytestmark = pytest.mark.integration


@pytest.fixture
async def intake(pool: asyncpg.Pool, broker: Broker) -> AsyncIterator[Intake]:
    publisher = Publisher(pool, broker)
    intake = Intake(publisher)
    yield intake
    await intake.settle()
    await publisher.settle()


async def new_job(pool: asyncpg.Pool, owner: str, **fields: Any) -> NewJob:
    asset = await record_asset(pool, owner=owner)
    return NewJob(asset.id, f"a job of {owner}", Tier.PREMIUM, Style.DEFAULT, owner, **fields)


async def together(intake: Intake, jobs: list[NewJob], *, fair_share_cap: int = 0) -> list[Any]:
    """Every job asked for before any statement is answered; each answer, or what it raised."""
    asking = (intake.queue(job, fair_share_cap=fair_share_cap) for job in jobs)
    return await asyncio.gather(*asking, return_exceptions=True)


async def fillers(pool: asyncpg.Pool) -> list[NewJob]:
    """Jobs of their own owners that take the free slots: whatever is asked after them goes in one batch."""
    return [await new_job(pool, f"filler-{n}") for n in range(PARALLEL_BATCHES)]


async def statements_that_wrote(pool: asyncpg.Pool) -> int:
    """Rows a statement writes share its transaction's id."""
    return int(await pool.fetchval("SELECT count(DISTINCT xmin::text) FROM jobs"))


async def test_jobs_submitted_together_share_a_statement_and_each_is_queued_and_announced(
    pool: asyncpg.Pool, intake: Intake
) -> None:
    jobs = [await new_job(pool, f"owner-{n}", trace_id=f"{n:032x}") for n in range(10)]

    queued = await together(intake, jobs)

    assert [job.owner for job in queued] == [f"owner-{n}" for n in range(10)]
    assert all(isinstance(job, Job) and not job.held for job in queued)
    # The first jobs each found a slot free; the other eight went together.
    assert await statements_that_wrote(pool) == PARALLEL_BATCHES + 1
    rows = await pool.fetch("SELECT id, trace_id, asset_id FROM jobs ORDER BY owner")
    assert [(row["trace_id"], row["asset_id"]) for row in rows] == [(job.trace_id, job.asset_id) for job in jobs]
    history = await pool.fetch("SELECT job_id, type, to_status, details FROM job_events")
    assert (
        sorted((row["type"], row["to_status"], row["details"]["tier"]) for row in history)
        == [("job.queued", "queued", "premium")] * 10
    )
    assert {row["job_id"] for row in history} == {job.id for job in queued}

    async def announced() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 10)

    await poll(announced, what="every job's announcement published and marked")


async def test_a_key_taken_within_the_batch_is_heard_as_if_alone(pool: asyncpg.Pool, intake: Intake) -> None:
    asset = await record_asset(pool, owner="keyed")
    twice = [NewJob(asset.id, "same", Tier.PREMIUM, Style.DEFAULT, "keyed", "key-1", "print") for _ in range(2)]

    answers = await together(intake, [*await fillers(pool), *twice])

    won, lost = answers[-2:]
    assert isinstance(won, Job) and isinstance(lost, asyncpg.UniqueViolationError)
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE idempotency_key = 'key-1'") == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox") == PARALLEL_BATCHES + 1


async def test_another_owners_asset_is_no_job_and_costs_the_batch_nothing(pool: asyncpg.Pool, intake: Intake) -> None:
    theirs = await record_asset(pool, owner="neighbour")
    stolen = NewJob(theirs.id, "mine now", Tier.PREMIUM, Style.DEFAULT, "thief")
    mine = await new_job(pool, "honest")

    answers = await together(intake, [*await fillers(pool), stolen, mine])

    assert answers[-2] is None and isinstance(answers[-1], Job)
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE owner = 'thief'") == 0
    assert await pool.fetchval("SELECT count(*) FROM job_events") == PARALLEL_BATCHES + 1


async def test_an_owners_jobs_in_one_batch_each_count_against_its_fair_share(
    pool: asyncpg.Pool, intake: Intake
) -> None:
    busy = [await new_job(pool, "busy") for _ in range(4)]

    answers = await together(intake, [*await fillers(pool), *busy], fair_share_cap=1)

    assert sorted(job.held for job in answers[-4:]) == [False, True, True, True]
    held = await pool.fetchval("SELECT count(*) FROM outbox WHERE held_job IS NOT NULL")
    assert held == 3  # their announcements wait for room (shared/fairshare.py)


async def test_a_statement_the_server_refuses_sends_each_job_alone(pool: asyncpg.Pool, intake: Intake) -> None:
    """PostgreSQL refuses a NUL in text: the batch rolls back, and only the job that carried it fails."""
    good = [await new_job(pool, f"good-{n}") for n in range(3)]
    bad = await new_job(pool, "bad")
    bad = NewJob(bad.asset_id, "a \x00 in the prompt", Tier.PREMIUM, Style.DEFAULT, "bad")

    answers = await together(intake, [*await fillers(pool), good[0], bad, *good[1:]])

    assert isinstance(answers[PARALLEL_BATCHES + 1], asyncpg.PostgresError)
    written = [answer for n, answer in enumerate(answers) if n != PARALLEL_BATCHES + 1]
    assert all(isinstance(answer, Job) for answer in written)
    assert await pool.fetchval("SELECT count(*) FROM jobs") == len(written)


async def test_webhook_subscriptions_travel_with_their_own_job(pool: asyncpg.Pool, intake: Intake) -> None:
    hooked = await new_job(
        pool, "hooked", webhook_url="https://example.com/hook", webhook_events=["job.succeeded", "job.failed"]
    )
    plain = await new_job(pool, "plain")

    await together(intake, [*await fillers(pool), hooked, plain])

    rows = {row["owner"]: row for row in await pool.fetch("SELECT owner, webhook_url, webhook_events FROM jobs")}
    assert rows["hooked"]["webhook_events"] == ["job.succeeded", "job.failed"]
    assert rows["hooked"]["webhook_url"] == "https://example.com/hook"
    assert rows["plain"]["webhook_events"] is None and rows["plain"]["webhook_url"] is None


async def test_a_job_id_is_its_own_in_every_answer(pool: asyncpg.Pool, intake: Intake) -> None:
    jobs = [await new_job(pool, f"owner-{n}") for n in range(6)]

    queued = await together(intake, jobs)

    assert len({job.id for job in queued}) == 6 and all(isinstance(job.id, uuid.UUID) for job in queued)
    stored = {row["id"]: row["owner"] for row in await pool.fetch("SELECT id, owner FROM jobs")}
    assert {job.id: job.owner for job in queued} == stored
