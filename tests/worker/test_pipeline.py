"""The whole job path on the real RabbitMQ and PostgreSQL: API → broker → worker → enhanced photo."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from PIL import ExifTags, Image

from services.worker import runner
from services.worker.consumer import TierConsumers
from services.worker.context import WorkerContext
from services.worker.engines import Engine, EnhanceRequest, EnhanceResult
from services.worker.runner import worker_context
from services.worker.settings import WorkerSettings
from shared.broker import QUEUE_HEADER, REASON_HEADER
from shared.domain import Style, Tier
from shared.errors import PermanentEngineError, TransientEngineError
from shared.events import EventType, JobCanceled, JobQueued, encode, make_event
from shared.topology import Topology
from tests.harness.api import stored_files
from tests.harness.broker import queue_counts
from tests.harness.poll import poll
from tests.worker.photos import encode as encode_photo
from tests.worker.photos import gps_exif, house

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import JobWaiter, Submitter, Uploader
    from tests.harness.broker import TapFactory
    from tests.harness.worker import WorkerFactory

pytestmark = pytest.mark.integration

LONG_EDGE = {"free": 1024, "premium": 1536}
SUCCEEDED_PATH = [(None, "queued"), ("queued", "processing"), ("processing", "succeeded")]


async def transitions_of(pool: asyncpg.Pool, job_id: str) -> list[tuple[str | None, str]]:
    rows = await pool.fetch(
        "SELECT from_status, to_status FROM job_events WHERE job_id = $1 ORDER BY id", uuid.UUID(job_id)
    )
    return [(row["from_status"], row["to_status"]) for row in rows]


async def queue_is_empty(amqp: AbstractRobustConnection, name: str) -> bool:
    return (await queue_counts(amqp, name))[0] == 0


async def take_all(amqp: AbstractRobustConnection, name: str) -> list[AbstractIncomingMessage]:
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        found: list[AbstractIncomingMessage] = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(message)
        return found
    finally:
        await channel.close()


async def publish_raw(
    amqp: AbstractRobustConnection,
    topology: Topology,
    body: bytes,
    *,
    routing_key: str,
    message_id: str,
    headers: dict[str, Any] | None = None,
) -> None:
    """Publish straight to the events exchange, confirmed, as any (possibly broken) publisher could."""
    async with await amqp.channel(publisher_confirms=True) as channel:
        exchange = await channel.get_exchange(topology.events_exchange, ensure=True)
        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type="application/json",
            headers=headers or {},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=routing_key, mandatory=True)


class ScriptedEngine:
    """An engine whose failures and pace the test chooses; the broker and the database stay real."""

    name = "scripted"

    def __init__(self, *failures: Exception, delay: float = 0.0, always: Exception | None = None) -> None:
        self.failures = list(failures)
        self.always = always
        self.delay = delay
        self.calls: list[EnhanceRequest] = []
        self.finished = 0
        self.output = encode_photo(house(64, 48, seed=3))

    async def aclose(self) -> None:
        """Holds nothing."""

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        self.calls.append(request)
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        await asyncio.sleep(self.delay)
        self.finished += 1
        return EnhanceResult(
            image=self.output, content_type="image/jpeg", width=64, height=48, cost=Decimal("0.02"), engine=self.name
        )


@contextlib.asynccontextmanager
async def consuming(settings: WorkerSettings, engine: Engine, *, grace: float = 10.0) -> AsyncIterator[WorkerContext]:
    """A worker built as `run()` builds it, with the engine swapped for a scripted one."""
    async with worker_context(settings) as built:
        ctx = dataclasses.replace(built, engine=engine)
        consumers = TierConsumers(ctx)
        await consumers.start()
        try:
            yield ctx
        finally:
            await consumers.stop(grace)


async def test_every_tier_and_style_succeeds_end_to_end(
    api: Client,
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker: WorkerFactory,
    tap: TapFactory,
    pool: asyncpg.Pool,
    storage_dirs: tuple[Path, Path],
) -> None:
    original = encode_photo(house(600, 400), exif=gps_exif())
    asset = await upload(original)
    watched = await tap("job.*", EventType.WORKER_HEARTBEAT.value)
    jobs = [
        await submit(asset["id"], prompt=f"{style} for the listing", tier=tier, style=style.value)
        for tier in ("free", "premium")
        for style in Style
    ]
    running = await worker(concurrency=2)

    outputs: set[str] = set()
    for job in jobs:
        done = await wait_for_job(job["id"], within=60)
        assert done["status"] == "succeeded", done
        assert (done["attempts"], done["error"]) == (1, None)
        assert done["started_at"] is not None
        assert done["completed_at"] is not None
        response = await api.get(done["output_url"])
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        data = await response.read()
        assert data != original
        outputs.add(hashlib.sha256(data).hexdigest())
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert max(image.size) == LONG_EDGE[job["tier"]]
            assert image.size[0] / image.size[1] == pytest.approx(1.5, abs=0.005)  # the 3:2 frame is kept
            assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert await transitions_of(pool, job["id"]) == SUCCEEDED_PATH
    assert len(outputs) == len(jobs)  # every tier and style made its own picture
    assert stored_files(storage_dirs[1]) == sorted(f"{job['id']}.jpg" for job in jobs)

    await running.stop()
    events = await watched.events()
    for job in jobs:
        kinds = sorted(event.type.value for event in events if event.job_id == uuid.UUID(job["id"]))
        assert kinds == ["job.started", "job.succeeded"], job["id"]
    beats = [event.data for event in events if event.type is EventType.WORKER_HEARTBEAT]
    assert beats
    assert {beat["worker_id"] for beat in beats} == {running.settings.worker_id}
    assert {"host", "in_flight", "processed"} <= beats[-1].keys()
    assert max(beat["processed"] for beat in beats) >= 1


async def test_the_same_job_queued_delivered_twice_gives_one_output(
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker: WorkerFactory,
    tap: TapFactory,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    storage_dirs: tuple[Path, Path],
) -> None:
    job = await submit((await upload())["id"], tier="premium")
    succeeded = await tap(EventType.JOB_SUCCEEDED.value)
    started = await tap(EventType.JOB_STARTED.value)
    queued = await pool.fetchrow("SELECT * FROM outbox WHERE routing_key = 'job.queued.premium'")
    assert queued is not None
    # The very same event (id, body, headers) a second time, as a duplicate publish would deliver it.
    await publish_raw(
        amqp,
        topology,
        bytes(queued["body"]),
        routing_key=queued["routing_key"],
        message_id=queued["message_id"],
        headers=queued["headers"],
    )
    work_queue = topology.work_queue(Tier.PREMIUM)
    assert (await queue_counts(amqp, work_queue))[0] == 2

    running = await worker(concurrency=2)
    done = await wait_for_job(job["id"], within=30)
    await poll(lambda: queue_is_empty(amqp, work_queue), within=10, what="both copies to be taken")
    await running.stop()

    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    assert await queue_counts(amqp, work_queue) == (0, 0)  # both copies acked, none handed back
    assert await queue_is_empty(amqp, topology.dead_letter_queue)
    assert await succeeded.count() == 1
    assert await started.count() == 1
    assert await transitions_of(pool, job["id"]) == SUCCEEDED_PATH
    assert stored_files(storage_dirs[1]) == [f"{job['id']}.jpg"]


async def test_a_premium_job_overtakes_a_free_backlog(
    upload: Uploader, submit: Submitter, worker: WorkerFactory, pool: asyncpg.Pool
) -> None:
    asset = await upload(encode_photo(house(320, 240)))
    free = [await submit(asset["id"], prompt=f"free {n}", tier="free") for n in range(50)]
    premium = await submit(asset["id"], prompt="premium after the backlog", tier="premium")

    await worker(concurrency=1)

    async def all_done() -> bool:
        return int(await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'succeeded'")) == 51

    await poll(all_done, within=100, what="all 51 jobs to succeed")
    started = {str(row["id"]): row["started_at"] for row in await pool.fetch("SELECT id, started_at FROM jobs")}
    overtaken = [job for job in free if started[premium["id"]] < started[job["id"]]]
    assert len(overtaken) >= 40, f"premium started before only {len(overtaken)} of 50 free jobs"


def _envelope(**changes: Any) -> bytes:
    event = make_event(JobCanceled(tier=Tier.FREE), job_id=uuid.uuid4())
    return json.dumps({**json.loads(encode(event)), **changes}).encode()


async def test_poison_messages_are_dead_lettered_with_a_reason_and_never_looped(
    pool: asyncpg.Pool, worker: WorkerFactory, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    ghost = make_event(
        JobQueued(asset_id=uuid.uuid4(), tier=Tier.FREE, style=Style.DEFAULT, prompt="nobody's job"),
        job_id=uuid.uuid4(),
    )
    poison = {
        "not-json": (b"\x00\x01 this is not JSON", "invalid envelope"),
        "unknown-type": (_envelope(type="job.exploded"), "invalid envelope"),
        "wrong-version": (_envelope(version=7), "unsupported version 7"),
        "not-a-job": (encode(make_event(JobCanceled(tier=Tier.FREE))), "not a job.queued"),
        "ghost-job": (encode(ghost), f"job {ghost.job_id} does not exist"),
    }
    running = await worker(concurrency=2)

    for message_id, (body, _) in poison.items():
        await publish_raw(amqp, topology, body, routing_key="job.queued.free", message_id=message_id)

    async def all_parked() -> bool:
        return (await queue_counts(amqp, topology.dead_letter_queue))[0] >= len(poison)

    await poll(all_parked, within=20, what="every poison message in the dead-letter queue")
    await running.stop()

    assert await queue_counts(amqp, topology.work_queue(Tier.FREE)) == (0, 0)
    parked = {message.message_id: message for message in await take_all(amqp, topology.dead_letter_queue)}
    assert set(parked) == set(poison)  # each exactly once
    for message_id, (body, reason) in poison.items():
        headers = parked[message_id].headers
        assert reason in str(headers[REASON_HEADER]), (message_id, headers[REASON_HEADER])
        assert headers[QUEUE_HEADER] == topology.work_queue(Tier.FREE)
        assert parked[message_id].body == body
    assert await pool.fetchval("SELECT count(*) FROM job_events") == 0


async def test_a_canceled_job_is_skipped_by_the_worker(
    api: Client,
    upload: Uploader,
    submit: Submitter,
    worker: WorkerFactory,
    tap: TapFactory,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
) -> None:
    job = await submit((await upload())["id"])
    assert (await api.post(f"/jobs/{job['id']}/cancel")).status == 200
    started = await tap(EventType.JOB_STARTED.value)

    running = await worker()
    await poll(lambda: queue_is_empty(amqp, topology.work_queue(Tier.FREE)), within=10, what="the message taken")
    await running.stop()

    assert await queue_counts(amqp, topology.work_queue(Tier.FREE)) == (0, 0)
    assert await queue_is_empty(amqp, topology.dead_letter_queue)
    assert await started.count() == 0
    assert await transitions_of(pool, job["id"]) == [(None, "queued"), ("queued", "canceled")]


async def test_a_transient_engine_failure_is_retried_and_succeeds(
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    tap: TapFactory,
    pool: asyncpg.Pool,
) -> None:
    job = await submit((await upload())["id"], prompt="try again", tier="premium", style="dusk")
    retrying = await tap(EventType.JOB_RETRYING.value)
    engine = ScriptedEngine(TransientEngineError("upstream said 503", code="engine_unavailable"))

    async with consuming(worker_settings, engine):
        done = await wait_for_job(job["id"], within=30)

    assert done["status"] == "succeeded", done
    assert (done["attempts"], done["error"], done["cost"]) == (2, None, "0.020000")
    assert [(call.prompt, call.tier, call.style) for call in engine.calls] == [
        ("try again", Tier.PREMIUM, Style.DUSK)
    ] * 2
    assert await transitions_of(pool, job["id"]) == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "queued"),
        ("queued", "processing"),
        ("processing", "succeeded"),
    ]
    [event] = await retrying.events()
    assert (event.job_id, event.data["error_code"], event.data["attempt"]) == (
        uuid.UUID(job["id"]),
        "engine_unavailable",
        1,
    )


async def test_a_permanent_engine_error_fails_the_job_at_once(
    api: Client,
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    tap: TapFactory,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
) -> None:
    job = await submit((await upload())["id"])
    failed = await tap(EventType.JOB_FAILED.value)
    engine = ScriptedEngine(PermanentEngineError("the photo is all black", code="unusable_photo"))

    async with consuming(worker_settings, engine):
        done = await wait_for_job(job["id"], within=30)

    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"] == {"code": "unusable_photo", "message": "the photo is all black"}
    assert done["output_url"] is None
    assert len(engine.calls) == 1
    assert await transitions_of(pool, job["id"]) == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "failed"),
    ]
    assert (await api.get(f"/jobs/{job['id']}/output")).status == 409
    [event] = await failed.events()
    assert (event.data["error_code"], event.data["attempt"]) == ("unusable_photo", 1)
    assert await queue_is_empty(amqp, topology.dead_letter_queue)


async def test_a_job_that_keeps_failing_gives_up_after_max_attempts(
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
) -> None:
    job = await submit((await upload())["id"])
    engine = ScriptedEngine(always=TransientEngineError("still down", code="engine_unavailable"))

    async with consuming(worker_settings.model_copy(update={"max_attempts": 2}), engine):
        done = await wait_for_job(job["id"], within=30)

        async def parked() -> bool:
            return not await queue_is_empty(amqp, topology.dead_letter_queue)

        await poll(parked, within=10, what="the spent message in the dead-letter queue")

    assert (done["status"], done["attempts"], done["error"]["code"]) == ("failed", 2, "engine_unavailable")
    assert len(engine.calls) == 2
    assert [to for _, to in await transitions_of(pool, job["id"])] == [
        "queued",
        "processing",
        "queued",
        "processing",
        "failed",
    ]
    [message] = await take_all(amqp, topology.dead_letter_queue)
    assert "gave up after 2 attempts" in str(message.headers[REASON_HEADER])


async def test_a_job_handed_back_mid_way_is_taken_over_and_succeeds_once(
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    tap: TapFactory,
    pool: asyncpg.Pool,
    storage_dirs: tuple[Path, Path],
) -> None:
    job = await submit((await upload())["id"])
    succeeded = await tap(EventType.JOB_SUCCEEDED.value)
    stuck = ScriptedEngine(delay=60)

    # A worker that holds the job, then loses it without finishing: the broker redelivers the message.
    async with consuming(worker_settings, stuck, grace=0):
        await wait_for_job(job["id"], until=frozenset({"processing"}), within=15)
    async with consuming(worker_settings.model_copy(update={"worker_id": "rescuer"}), ScriptedEngine()):
        done = await wait_for_job(job["id"], within=15)

    assert (done["status"], done["attempts"]) == ("succeeded", 2)
    assert stuck.finished == 0
    assert await transitions_of(pool, job["id"]) == [
        (None, "queued"),
        ("queued", "processing"),
        ("processing", "processing"),
        ("processing", "succeeded"),
    ]
    assert await succeeded.count() == 1
    assert stored_files(storage_dirs[1]) == [f"{job['id']}.jpg"]


async def test_a_drain_that_outlasts_the_watchdogs_patience_is_no_outage(
    upload: Uploader, submit: Submitter, wait_for_job: JobWaiter, worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopping worker cancels its consumers on purpose: the watchdog must not call that a lost broker."""
    engine = ScriptedEngine(delay=2.0)
    monkeypatch.setattr(runner, "create_engine", lambda *_: engine)
    job = await submit((await upload())["id"])
    running = await worker(concurrency=1, watchdog_interval=0.1, broker_give_up_after=0.3)
    await wait_for_job(job["id"], until=frozenset({"processing"}), within=15)

    await running.stop(within=15)

    assert running.task.exception() is None
    assert (await wait_for_job(job["id"], within=1))["status"] == "succeeded"


async def test_a_stop_lets_the_job_in_flight_finish_and_takes_no_more(
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker: WorkerFactory,
    tap: TapFactory,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = ScriptedEngine(delay=1.0)
    monkeypatch.setattr(runner, "create_engine", lambda *_: engine)
    asset = await upload()
    first, second = [await submit(asset["id"], prompt=f"job {n}") for n in (1, 2)]
    stopped = await tap(EventType.WORKER_STOPPED.value)
    running = await worker(concurrency=1)
    await wait_for_job(first["id"], until=frozenset({"processing"}), within=15)

    await running.stop(within=15)  # what SIGTERM does in __main__: set the event, then run() returns

    assert running.task.done()
    assert running.task.exception() is None
    assert engine.finished == 1
    finished = await wait_for_job(first["id"], within=1)
    assert finished["status"] == "succeeded"
    assert (await wait_for_job(second["id"], until=frozenset({"queued"}), within=1))["attempts"] == 0
    assert await queue_counts(amqp, topology.work_queue(Tier.FREE)) == (1, 0)  # left for the next worker
    assert await stopped.count() == 1
    assert await transitions_of(pool, second["id"]) == [(None, "queued")]


async def test_the_next_job_starts_while_the_last_ones_output_is_being_stored(
    upload: Uploader,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One slot, given back when the engine is done: storing and committing an output overlap the next job,
    so the engine does not wait on the disk and the database between photos."""
    engine = ScriptedEngine()
    released = asyncio.Event()
    async with consuming(worker_settings.model_copy(update={"concurrency": 1}), engine) as ctx:
        store = ctx.outputs.put

        async def held(key: str, data: bytes) -> None:
            await released.wait()
            await store(key, data)

        monkeypatch.setattr(ctx.outputs, "put", held)
        asset = await upload()
        jobs = [await submit(asset["id"], prompt=f"job {n}") for n in (1, 2)]

        async def second_in_engine() -> bool:
            return len(engine.calls) == 2

        await poll(second_in_engine, within=30, what="the second job in the engine")
        released.set()
        done = [await wait_for_job(job["id"], within=30) for job in jobs]

    assert [job["status"] for job in done] == ["succeeded", "succeeded"]
    assert engine.finished == 2
