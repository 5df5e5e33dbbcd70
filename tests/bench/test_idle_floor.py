"""The idle latency's floor: the two waits it times alone, and nothing of theirs left behind."""

from __future__ import annotations

import aio_pika
import aiormq
import asyncpg
import pytest

from bench import idle_latency

pytestmark = pytest.mark.integration


async def test_the_floor_times_a_commit_and_a_quorum_delivery_and_leaves_nothing(
    pool: asyncpg.Pool, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idle_latency, "FLOOR_SAMPLES", 5)
    monkeypatch.setattr(idle_latency, "AMQP_URL", amqp_url)

    floor = await idle_latency.floor(pool)

    # Each is a round trip to a server that writes to disk first: more than nothing, far less than a second.
    assert 0 < floor["commit_ms"] < 1000
    assert 0 < floor["delivery_ms"] < 1000
    assert floor["sum_ms"] == pytest.approx(floor["commit_ms"] + floor["delivery_ms"], abs=0.011)
    assert await pool.fetchval("SELECT to_regclass('bench_floor')") is None
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity):
            await (await connection.channel()).declare_queue(idle_latency.FLOOR_QUEUE, passive=True)
