"""The worker with ENGINE=openai, as a process, against a local OpenAI-compatible server.

A success stores its cost and the api shows it; a 429's Retry-After holds the job back at least that
long in a delay queue while the worker's one slot runs other jobs; an exhausted quota fails the job
at once; an answer that was billed but unusable fails the job with its cost counted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from tests.harness.fake_openai import USAGE_COST, FakeOpenAI, Reply
from tests.harness.poll import poll
from tests.system.openai_stack import JOB_DEADLINE_S, Stack, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RETRY_AFTER_S = 5  # above what submitting and starting a job takes on a loaded 2-core machine


@pytest.fixture
async def stack(service_env: dict[str, str], log_dir: Path, api_key: dict[str, str]) -> AsyncIterator[Stack]:
    # One slot: a job waiting out a Retry-After must not hold it. The backoff ladder is compressed (by
    # `running`); a Retry-After is not.
    async with running(service_env, log_dir, api_key, ENGINE="openai", CONCURRENCY="1") as started:
        yield started


async def test_cost_is_stored_on_success_and_on_billed_failures_and_a_quota_fails_at_once(
    stack: Stack, photo: bytes
) -> None:
    stack.fake.script = {
        "no credit": [Reply(429, "insufficient_quota", headers={"Retry-After": "1"})],
        "garbled": [Reply(broken=True)],
    }
    ok, quota, garbled = [await stack.submit(photo, prompt) for prompt in ("fine", "no credit", "garbled")]

    done = await stack.finished(ok)
    assert (done["status"], done["attempts"], Decimal(str(done["cost"]))) == ("succeeded", 1, USAGE_COST)

    refused = await stack.finished(quota)
    assert (refused["status"], refused["attempts"], refused["error"]["code"]) == ("failed", 1, "openai_quota")
    assert "quota exhausted" in refused["error"]["message"]
    assert Decimal(str(refused["cost"])) == 0

    billed = await stack.finished(garbled)
    assert (billed["status"], billed["attempts"], billed["error"]["code"]) == ("failed", 1, "openai_bad_output")
    assert Decimal(str(billed["cost"])) == USAGE_COST
    # Each job asked OpenAI exactly once: no retry of what no retry can fix.
    assert len(stack.fake.calls) == 3


async def _events(pool: asyncpg.Pool, job_id: str, event_type: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT created_at, details FROM job_events WHERE job_id = $1 AND type = $2 ORDER BY created_at",
        uuid.UUID(job_id),
        event_type,
    )


async def _asked(fake: FakeOpenAI, prompt_part: str) -> bool:
    return any(prompt_part in str(call.get("prompt", "")) for call in fake.calls)


async def test_a_retry_after_delays_the_next_attempt_without_holding_the_slot(
    stack: Stack, photo: bytes, pool: asyncpg.Pool
) -> None:
    release = asyncio.Event()
    stack.fake.script = {"slow down": [Reply(429, headers={"Retry-After": str(RETRY_AFTER_S)}, release=release)]}
    limited = await stack.submit(photo, "slow down")
    await poll(lambda: _asked(stack.fake, "slow down"), within=JOB_DEADLINE_S, what="the first attempt's call")
    # Queued behind the one slot before the 429 comes: it starts as soon as the slot is free.
    other = await stack.submit(photo, "meanwhile")
    release.set()
    [retrying] = await poll(
        lambda: _events(pool, limited, "job.retrying"), within=JOB_DEADLINE_S, what="the first attempt's 429"
    )

    done, meanwhile = await stack.finished(limited), await stack.finished(other)

    assert (done["status"], done["attempts"], Decimal(str(done["cost"]))) == ("succeeded", 2, USAGE_COST)
    assert meanwhile["status"] == "succeeded"
    first, second = [row["created_at"] for row in await _events(pool, limited, "job.started")]
    failed_at: datetime = retrying["created_at"]
    assert (second - failed_at).total_seconds() >= RETRY_AFTER_S
    assert retrying["details"]["delay_ms"] >= RETRY_AFTER_S * 1000
    # The one slot ran the other job while this one waited in a delay queue. The slot comes free with the
    # 429 itself, so the other job's start may commit before or after the retry's: either is right.
    [other_started] = [row["created_at"] for row in await _events(pool, other, "job.started")]
    assert first < other_started < second
