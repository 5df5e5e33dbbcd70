"""`Prefer: wait=N` on the real PostgreSQL: the answer comes when the job finishes (PostgreSQL's
notification, not a query loop), or after N seconds; hundreds of waiters hold no connection and read nothing
while they wait."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import pytest

from services.api import keys
from shared import jobs, jobstate, jobwatch
from tests.conftest import bearer
from tests.harness.poll import poll

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import Submitter, Uploader

pytestmark = pytest.mark.integration

WAITERS = 300


async def _queued(upload: Uploader, submit: Submitter) -> str:
    return str((await submit((await upload())["id"]))["id"])


async def _finish(pool: asyncpg.Pool, job_id: str) -> None:
    """What a worker does to a job, without one: processing, then succeeded."""
    started = await jobstate.start(pool, uuid.UUID(job_id), worker_id="test-worker")
    assert started is not None
    done = await jobstate.succeed(
        pool, started.id, output_key=f"{job_id}.jpg", content_type="image/jpeg", cost=Decimal(0), engine="local"
    )
    assert done is not None


async def _read(api: Client, job_id: str, prefer: str, **headers: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    response = await api.get(f"/jobs/{job_id}", headers={"Prefer": prefer, **headers})
    return response.status, await response.json(), dict(response.headers)


async def _listening(api: Client) -> None:
    await asyncio.wait_for(api.app[keys.JOB_WATCH].listening.wait(), timeout=30)


async def _until_waiting(api: Client, count: int) -> None:
    async def waiting() -> bool:
        return api.app[keys.JOB_WATCH].waiting == count

    await poll(waiting, within=60, what=f"{count} requests to wait")


async def _waiting_read(api: Client, job_id: str, prefer: str) -> asyncio.Task[tuple[int, Any, dict[str, str]]]:
    """A read of the job, once it is waiting (the watch listening)."""
    await _listening(api)
    reading = asyncio.create_task(_read(api, job_id, prefer))
    await _until_waiting(api, 1)
    return reading


async def test_a_waiting_read_answers_as_soon_as_the_job_finishes(
    api: Client, upload: Uploader, submit: Submitter, pool: asyncpg.Pool
) -> None:
    job_id = await _queued(upload, submit)
    reading = await _waiting_read(api, job_id, "wait=60")

    await _finish(pool, job_id)
    status, body, headers = await reading

    # Succeeded: the finish ended the wait (one that ran out would answer with the job still queued).
    assert (status, body["job"]["status"]) == (200, "succeeded")
    assert headers["Preference-Applied"] == "wait=60"
    assert api.app[keys.JOB_WATCH].waiting == 0


async def test_a_wait_that_runs_out_answers_with_the_job_as_it_is(
    api: Client, upload: Uploader, submit: Submitter
) -> None:
    job_id = await _queued(upload, submit)

    status, body, headers = await (await _waiting_read(api, job_id, "wait=1"))  # it did wait, then gave up

    assert (status, body["job"]["status"], headers["Preference-Applied"]) == (200, "queued", "wait=1")


async def test_a_finished_job_answers_at_once_and_other_preferences_are_ignored(
    api: Client, upload: Uploader, submit: Submitter, pool: asyncpg.Pool
) -> None:
    job_id = await _queued(upload, submit)
    await _finish(pool, job_id)

    status, body, headers = await _read(api, job_id, "respond-async, wait=60; foo=bar")
    assert (status, body["job"]["status"], headers["Preference-Applied"]) == (200, "succeeded", "wait=60")

    status, body, headers = await _read(api, job_id, "respond-async")
    assert (status, body["job"]["status"]) == (200, "succeeded")
    assert "Preference-Applied" not in headers


@pytest.mark.parametrize("prefer", ["wait=61", "wait=abc", "wait=-1", "wait=1.5", "wait=", "wait=" + "9" * 5000])
async def test_a_wait_out_of_range_is_a_422_naming_the_header_and_creates_nothing(
    api: Client, upload: Uploader, submit: Submitter, pool: asyncpg.Pool, prefer: str
) -> None:
    job_id = await _queued(upload, submit)
    status, body, _ = await _read(api, job_id, prefer)
    assert (status, body["error"]["field"]) == (422, "Prefer")

    asset = (await upload())["id"]
    before = await pool.fetchval("SELECT count(*) FROM jobs")
    response = await api.post("/jobs", json={"asset_id": asset, "prompt": "x"}, headers={"Prefer": prefer})
    assert (response.status, (await response.json())["error"]["field"]) == (422, "Prefer")
    assert await pool.fetchval("SELECT count(*) FROM jobs") == before


async def test_another_owners_job_is_404_at_once_even_when_asked_to_wait(
    api: Client, upload: Uploader, submit: Submitter, pool: asyncpg.Pool
) -> None:
    job_id = await _queued(upload, submit)
    neighbour = await bearer(pool, owner="neighbour")

    status, body, _ = await _read(api, job_id, "wait=60", **neighbour)

    assert (status, body["error"]["field"]) == (404, "job_id")
    assert api.app[keys.JOB_WATCH].waiting == 0


async def test_a_submission_can_wait_for_its_own_result(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    await _listening(api)
    asset = (await upload())["id"]
    posting = asyncio.create_task(
        api.post("/jobs", json={"asset_id": asset, "prompt": "wait for me"}, headers={"Prefer": "wait=60"})
    )
    await _until_waiting(api, 1)
    [job_id] = [str(row["id"]) for row in await pool.fetch("SELECT id FROM jobs")]

    await _finish(pool, job_id)
    response = await posting

    assert response.status == 202
    assert response.headers["Preference-Applied"] == "wait=60"
    assert (await response.json())["job"]["status"] == "succeeded"


async def test_hundreds_of_waiters_hold_no_connection_and_read_nothing_until_the_job_finishes(
    api: Client,
    upload: Uploader,
    submit: Submitter,
    pool: asyncpg.Pool,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = await _queued(upload, submit)
    await _listening(api)
    app = api.app
    reads = 0
    read_again = asyncio.Event()  # a read beyond the one each waiter makes before it waits
    get_job = jobs.get_job

    async def counted(*args: Any, **kwargs: Any) -> jobs.Job | None:
        nonlocal reads
        reads += 1
        if reads > WAITERS:
            read_again.set()
        return await get_job(*args, **kwargs)

    monkeypatch.setattr(jobs, "get_job", counted)
    # A session of its own: the test client's allows 100 connections at once.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers=auth)
    url, prefer = api.make_url(f"/jobs/{job_id}"), {"Prefer": "wait=60"}

    async def read() -> tuple[int, dict[str, Any]]:
        async with session.get(url, headers=prefer) as response:
            return response.status, await response.json()

    readers = [asyncio.create_task(read()) for _ in range(WAITERS)]
    await _until_waiting(api, WAITERS)

    # In the time a once-a-second poller would read 600 times, these read nothing, and hold no connection.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(read_again.wait(), timeout=2)
    assert reads == WAITERS  # one read each, before they began to wait
    api_pool = app[keys.POOL]
    assert api_pool.get_idle_size() == api_pool.get_size()

    await _finish(pool, job_id)
    try:
        answers = await asyncio.gather(*readers)
    finally:
        await session.close()

    assert {(status, body["job"]["status"]) for status, body in answers} == {(200, "succeeded")}
    assert reads == 2 * WAITERS  # and one more each once it finished


async def test_a_finish_while_the_listener_was_down_still_ends_the_wait(
    api: Client, upload: Uploader, submit: Submitter, pool: asyncpg.Pool
) -> None:
    job_id = await _queued(upload, submit)
    watch = api.app[keys.JOB_WATCH]
    reading = await _waiting_read(api, job_id, "wait=60")

    # The listening connection is cut (a PostgreSQL restart, a failover), and the job finishes unheard.
    terminated = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = $1 AND datname = current_database()",
        jobwatch.NAME,
    )
    assert terminated == 1

    async def deaf() -> bool:
        return not watch.listening.is_set()

    await poll(deaf, what="the watch to notice its connection is gone")
    await _finish(pool, job_id)
    status, body, _ = await reading

    assert (status, body["job"]["status"]) == (200, "succeeded")  # woken when the watch listened again
    await asyncio.wait_for(watch.listening.wait(), timeout=30)
