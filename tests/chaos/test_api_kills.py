"""Scenario 9: the API SIGKILLed mid-request; clients retry with the same Idempotency-Key."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE
from tests.chaos.stack import wait_http
from tests.chaos.verdict import half_written

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout())]


async def test_api_killed_mid_request(chaos: Chaos, jobs: int) -> None:
    """9. API killed mid-request; the client retries with the same Idempotency-Key and gets exactly one job."""
    await chaos.start(workers=2)
    load = chaos.submit(jobs, over_s=chaos.size.scaled(10, 40), file_share=0.5)
    kills = 0
    while not load.done() and kills < max(4, jobs // 8):
        await asyncio.sleep(random.uniform(0.5, 1.5))
        await wait_http(chaos.api, healthy=True)  # the supervisor restarts it, as a platform would
        await asyncio.sleep(random.uniform(0.0, 0.5))
        chaos.fault("SIGKILL api")
        chaos.stack.kill("api")
        kills += 1
    await wait_http(chaos.api, healthy=True)
    chaos.fault_over("api back")
    await chaos.drain()
    await chaos.finish()
    ledger = chaos.client.ledger
    retried = sum(1 for s in ledger.submissions if s.tries > 1)
    chaos.expect(kills > 0 and ledger.count("connection_error") > 0, "no request was ever cut by a kill")
    leftovers = await half_written(chaos.pool, chaos.uploads_dir, keep_asset=chaos.client.asset_id)
    chaos.result.notes["half_written"] = leftovers
    chaos.note(f"{kills} kills, {ledger.count('connection_error')} requests cut or refused, {retried} keys retried")
    if any(leftovers.values()):
        chaos.note("debris: " + ", ".join(f"{n} {what}" for what, n in leftovers.items() if n))
    chaos.conclude()
