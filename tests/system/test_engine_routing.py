"""The worker's engine per tier, its fallback to the local engine, its daily budget and its structure guard,
as processes against a local OpenAI-compatible server.

Each tier gets its own engine; with ENGINE_FALLBACK=local a paid call that is down, rate-limited, out of
quota or over the budget is served by the local engine at once (and says why), while a billed but broken
answer still fails the job; with the default "wait" the job is retried later on the paid engine. The
structure guard flags an output that moved the property: delivered flagged, or asked again with a stricter
prompt and failed if that moves it too.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.worker.engines.openai import build_prompt, worst_case_cost
from services.worker.engines.structure import STRUCTURE_THRESHOLD
from shared.domain import Style, Tier
from tests.harness.fake_openai import USAGE_COST, Reply
from tests.system.openai_stack import running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

# The sentence only the stricter second prompt has (build_prompt(strict=True)).
STRICT = "Change only light, colour and clarity"


def _routed(job: dict[str, Any]) -> tuple[Any, ...]:
    return job["status"], job["attempts"], job["engine"], job["fallback_reason"], Decimal(str(job["cost"]))


async def test_each_tier_has_its_engine_and_the_paid_ones_refusals_go_to_the_local_engine(
    service_env: dict[str, str], log_dir: Path, api_key: dict[str, str], photo: bytes
) -> None:
    env = {"ENGINE": "local", "ENGINE_PREMIUM": "openai", "ENGINE_FALLBACK": "local", "STRUCTURE_POLICY": "deliver"}
    async with running(service_env, log_dir, api_key, **env) as stack:
        stack.fake.script = {
            "[down]": [Reply(503, "server_error")],
            "[slow down]": [Reply(429, "rate_limit_exceeded", headers={"Retry-After": "30"})],
            "[no credit]": [Reply(429, "insufficient_quota")],
            "[garbled]": [Reply(broken=True)],
            "[moved]": [Reply(moved=True)],
        }
        free = await stack.submit(photo, "[free]", Tier.FREE)
        premium = {
            prompt: await stack.submit(photo, prompt)
            for prompt in ("[fine]", "[down]", "[slow down]", "[no credit]", "[garbled]", "[moved]")
        }

        free_job = await stack.finished(free)
        assert _routed(free_job) == ("succeeded", 1, "local", None, 0)
        # The local engine only maps tones: the guard does not look at its outputs.
        assert (free_job["structure_score"], free_job["flagged"]) == (None, False)
        assert stack.calls_for("[free]") == []

        fine = await stack.finished(premium["[fine]"])
        assert _routed(fine) == ("succeeded", 1, "openai", None, USAGE_COST)
        # The fake's "edit" is the upload itself: the structure is all there, well clear of the threshold.
        assert fine["structure_score"] >= (1 + STRUCTURE_THRESHOLD) / 2
        assert fine["flagged"] is False

        for prompt, reason in [
            ("[down]", "provider_unavailable"),
            ("[slow down]", "rate_limited"),
            ("[no credit]", "quota_exhausted"),
        ]:
            job = await stack.finished(premium[prompt])
            # At once, on the first attempt, and nothing billed: the refusal cost nothing.
            assert _routed(job) == ("succeeded", 1, "local", reason, 0), prompt
            assert (job["structure_score"], job["flagged"], job["error"]) == (None, False, None), prompt

        # Billed and broken: the local engine would not fix what the provider did not refuse.
        garbled = await stack.finished(premium["[garbled]"])
        assert (garbled["status"], garbled["attempts"], Decimal(str(garbled["cost"]))) == ("failed", 1, USAGE_COST)
        assert (garbled["error"]["code"], garbled["fallback_reason"]) == ("openai_bad_output", None)

        moved = await stack.finished(premium["[moved]"])
        assert _routed(moved) == ("succeeded", 1, "openai", None, USAGE_COST)
        assert moved["flagged"] is True
        assert moved["structure_score"] < STRUCTURE_THRESHOLD
        assert moved["output_url"]

        # Each premium job asked the paid engine exactly once, the free one never.
        assert {prompt: len(stack.calls_for(prompt)) for prompt in premium} == dict.fromkeys(premium, 1)
        assert len(stack.fake.calls) == len(premium)


async def test_waiting_retries_on_the_paid_engine_and_a_moved_structure_is_asked_for_again_strictly(
    service_env: dict[str, str], log_dir: Path, api_key: dict[str, str], photo: bytes
) -> None:
    # ENGINE_FALLBACK=wait and STRUCTURE_POLICY=retry are the defaults.
    async with running(service_env, log_dir, api_key, ENGINE="openai") as stack:
        stack.fake.script = {
            "[flaky]": [Reply(503, "server_error"), Reply()],
            "[moved once]": [Reply(moved=True), Reply()],
            "[moved twice]": [Reply(moved=True), Reply(moved=True)],
        }
        flaky, once, twice = [
            await stack.submit(photo, prompt) for prompt in ("[flaky]", "[moved once]", "[moved twice]")
        ]

        retried = await stack.finished(flaky)
        assert _routed(retried) == ("succeeded", 2, "openai", None, USAGE_COST)
        assert retried["flagged"] is False
        assert len(stack.calls_for("[flaky]")) == 2

        fixed = await stack.finished(once)
        # Both calls were billed; the second, stricter one kept the structure.
        assert _routed(fixed) == ("succeeded", 1, "openai", None, 2 * USAGE_COST)
        assert fixed["flagged"] is False
        assert fixed["structure_score"] >= STRUCTURE_THRESHOLD
        first, second = stack.calls_for("[moved once]")
        assert STRICT not in first["prompt"]
        assert STRICT in second["prompt"]
        assert second["prompt"] == build_prompt(Style.DEFAULT, "[moved once]", strict=True)

        refused = await stack.finished(twice)
        assert (refused["status"], refused["attempts"], Decimal(str(refused["cost"]))) == ("failed", 1, 2 * USAGE_COST)
        assert refused["error"]["code"] == "structure_changed"
        assert refused["flagged"] is True
        assert refused["structure_score"] < STRUCTURE_THRESHOLD
        assert refused["output_url"] is None
        assert [STRICT in call["prompt"] for call in stack.calls_for("[moved twice]")] == [False, True]


async def test_the_daily_budget_sends_premium_jobs_to_the_local_engine_once_it_has_no_room(
    service_env: dict[str, str], log_dir: Path, api_key: dict[str, str], photo: bytes, pool: asyncpg.Pool
) -> None:
    worst = worst_case_cost(Tier.PREMIUM)
    # Room for one call's worst case, but not for another's once the first one's bill is in.
    budget = (worst + USAGE_COST / 2).quantize(Decimal("0.01"))
    assert worst <= budget < USAGE_COST + worst
    # The ledger lives in the session's database, where other tests' paid calls land too: start from nothing.
    await pool.execute("DELETE FROM spend_holds")
    await pool.execute("DELETE FROM engine_spend")
    env = {
        "ENGINE": "local",
        "ENGINE_PREMIUM": "openai",
        "ENGINE_FALLBACK": "local",
        "OPENAI_DAILY_BUDGET_USD": str(budget),
    }
    async with running(service_env, log_dir, api_key, **env) as stack:
        jobs = []
        for n in range(3):
            # One after another, so each finds the ones before it settled in the ledger.
            jobs.append(await stack.finished(await stack.submit(photo, f"[job {n}]")))

    first, *later = jobs
    assert _routed(first) == ("succeeded", 1, "openai", None, USAGE_COST)
    for job in later:
        assert _routed(job) == ("succeeded", 1, "local", "budget_exhausted", 0)
    assert [len(stack.calls_for(f"[job {n}]")) for n in range(3)] == [1, 0, 0]
    today = await pool.fetch(
        "SELECT spent_usd FROM engine_spend WHERE day = (now() AT TIME ZONE 'UTC')::date",
    )
    assert [row["spent_usd"] for row in today] == [USAGE_COST]
    assert await pool.fetchval("SELECT count(*) FROM spend_holds") == 0
