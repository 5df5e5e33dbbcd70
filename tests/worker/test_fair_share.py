"""Fair share: one owner's backlog holds at most FAIR_SHARE_QUEUED of its jobs in the work queues, so
another owner's first job waits behind that many, not behind the whole backlog (shared/fairshare.py).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from shared import fairshare, outbox
from shared.broker import Broker
from shared.domain import Tier
from shared.topology import Topology
from tests.conftest import TEST_OWNER, Client, bearer
from tests.harness.api import ApiFactory, Uploader, all_marked_published, job_form, published
from tests.harness.broker import queue_counts
from tests.harness.poll import poll
from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration

CAP = 4
BACKLOG = 30
OTHER_OWNER = "second-customer"


async def _post_job(api: Client, asset_id: str, index: int, headers: dict[str, str] | None = None) -> str:
    fields = {"asset_id": asset_id, "prompt": f"backlog photo {index}", "tier": Tier.FREE.value}
    response = await api.post("/jobs", data=job_form(fields), headers=headers or {})
    assert response.status == 202, await response.text()
    return str((await response.json())["job"]["id"])


async def _held(pool: asyncpg.Pool, owner: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs WHERE owner = $1 AND held", owner))


async def test_a_backlog_keeps_at_most_its_share_in_the_queue_and_a_newcomer_starts_after_that_share(
    api_factory: ApiFactory,
    upload: Uploader,
    worker: WorkerFactory,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    photo: bytes,
) -> None:
    api = await api_factory(fair_share_queued=CAP)
    backlog_asset = (await upload())["id"]
    # One at a time, so that the backlog's order is the order of submission.
    for index in range(BACKLOG):
        await _post_job(api, backlog_asset, index)
    other = await bearer(pool, owner=OTHER_OWNER)
    form = job_form({"prompt": "the first photo of a new listing", "tier": Tier.FREE.value}, file=photo)
    response = await api.post("/jobs", data=form, headers=other)
    assert response.status == 202, await response.text()
    newcomer = str((await response.json())["job"]["id"])
    await published(api)

    # Nothing consumes yet: the broker holds the backlog's share and the newcomer, PostgreSQL the rest.
    ready, _ = await queue_counts(amqp, topology.work_queue(Tier.FREE))
    assert ready == CAP + 1
    assert await _held(pool, TEST_OWNER) == BACKLOG - CAP
    assert await _held(pool, OTHER_OWNER) == 0

    await worker(concurrency=1, fair_share_queued=CAP)

    async def all_finished() -> bool:
        unfinished = await pool.fetchval("SELECT count(*) FROM jobs WHERE status IN ('queued', 'processing')")
        return int(unfinished) == 0

    await poll(all_finished, within=180, what=f"{BACKLOG + 1} jobs to finish")

    started = await pool.fetch("SELECT id::text, owner FROM jobs ORDER BY started_at, id")
    ahead = [row["owner"] for row in started[: [row["id"] for row in started].index(newcomer)]]
    assert ahead == [TEST_OWNER] * len(ahead) and len(ahead) <= CAP, ahead
    statuses = await pool.fetch("SELECT DISTINCT status FROM jobs")
    assert [row["status"] for row in statuses] == ["succeeded"]
    assert await _held(pool, TEST_OWNER) == 0
    # The worker marks its announcements published shortly after their confirms (outbox.MARK_GATHER_S).
    await poll(all_marked_published(pool), within=30, what="every announcement marked published")
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE held_job IS NOT NULL") == 0


async def test_submissions_sent_all_at_once_hold_exactly_what_is_over_the_share(
    api_factory: ApiFactory, upload: Uploader, pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    """Each submission counts the owner's queued jobs under the owner's lock: racing ones do not each see
    the same room (without the lock, a burst like this one let several more than the share through)."""
    api = await api_factory(fair_share_queued=CAP)
    asset = (await upload())["id"]
    await asyncio.gather(*(_post_job(api, asset, index) for index in range(BACKLOG)))

    queued = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE owner = $1 AND status = 'queued' AND NOT held", TEST_OWNER
    )
    assert (queued, await _held(pool, TEST_OWNER)) == (CAP, BACKLOG - CAP)

    async def only_the_share_in_the_queue() -> bool:
        ready, _ = await queue_counts(amqp, topology.work_queue(Tier.FREE))
        return ready == CAP

    await poll(only_the_share_in_the_queue, within=15, what=f"{CAP} messages in the work queue")


async def test_canceling_a_queued_job_releases_the_next_held_one(
    api_factory: ApiFactory, upload: Uploader, pool: asyncpg.Pool, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    api = await api_factory(fair_share_queued=2)
    asset = (await upload())["id"]
    jobs = [await _post_job(api, asset, index) for index in range(4)]
    assert await _held(pool, TEST_OWNER) == 2

    response = await api.post(f"/jobs/{jobs[0]}/cancel")
    assert response.status == 200, await response.text()

    assert await _held(pool, TEST_OWNER) == 1
    assert await pool.fetchval("SELECT held FROM jobs WHERE id = $1", jobs[2]) is False

    async def released_into_the_queue() -> bool:
        ready, _ = await queue_counts(amqp, topology.work_queue(Tier.FREE))
        return ready == 3  # the canceled job's message stays until a worker skips it

    await poll(released_into_the_queue, within=15, what="the released job's message in the work queue")


async def test_the_relay_releases_held_jobs_whose_owner_has_room(
    api_factory: ApiFactory,
    upload: Uploader,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    amqp_url: str,
) -> None:
    """A job left held with room for it (its predecessor left `queued` without a start or a cancel, say
    dead-lettered) goes to the broker at the relay's next pass."""
    api = await api_factory(fair_share_queued=1)
    asset = (await upload())["id"]
    first, second = [await _post_job(api, asset, index) for index in range(2)]
    assert await pool.fetchval("SELECT held FROM jobs WHERE id = $1", second) is True
    await pool.execute("UPDATE jobs SET status = 'failed' WHERE id = $1", first)
    await published(api)  # the first job's own announcement is out and marked: the relay leaves it alone

    assert await fairshare.release_with_room(pool, cap=1) == 1
    broker = await Broker.connect(amqp_url, topology, name="test-relay")
    try:
        assert await outbox.relay_once(pool, broker, min_age_s=0) == 1
    finally:
        await broker.close()

    assert await pool.fetchval("SELECT held FROM jobs WHERE id = $1", second) is False
    ready, _ = await queue_counts(amqp, topology.work_queue(Tier.FREE))
    assert ready == 2
