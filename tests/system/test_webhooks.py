"""Signed completion webhooks end to end: api, worker and a customer's receiver as separate processes.

The receiver (tests/system/webhook_receiver.py) verifies each delivery with the Standard Webhooks library
and the secret the api hands its key's owner. Deliveries are at least once: a receiver answering 500 gets
the message again (the same `webhook-id`), a worker killed mid-delivery leaves it to another, and a
receiver that never answers 2xx sees the message dead-lettered with the reason after the last attempt.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from shared.broker import REASON_HEADER
from shared.events import decode
from shared.topology import Topology
from tests.harness.poll import poll
from tests.system.conftest import submit_job, wait_for_status
from tests.system.processes import ROOT, Service, free_port, start, wait_for_log, wait_healthy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAST = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the receiver listens on 127.0.0.1
    "RETRY_DELAY_SCALE": "0.01",  # webhook backoff 50 ms, 300 ms, ...
    "HEARTBEAT_INTERVAL": "0.5",
    "SWEEP_INTERVAL": "1",
    "LOG_LEVEL": "INFO",  # the worker says when it consumes
}


class Receiver:
    def __init__(self, process: subprocess.Popen[bytes], url: str) -> None:
        self.process = process
        self.url = url

    async def report(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}/received") as response:
            report: dict[str, Any] = await response.json()
            return report

    async def received(self) -> list[dict[str, Any]]:
        return list((await self.report())["received"])


def _spawn_receiver(port: int, secret: str, log_dir: Path) -> subprocess.Popen[bytes]:
    with (log_dir / "receiver.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.system.webhook_receiver", str(port), secret],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@asynccontextmanager
async def receiver(secret: str, log_dir: Path) -> AsyncIterator[Receiver]:
    port = free_port()
    process = _spawn_receiver(port, secret, log_dir)
    running = Receiver(process, f"http://127.0.0.1:{port}")

    async def listening() -> bool:
        try:
            await running.report()
        except aiohttp.ClientError:
            return False
        return True

    try:
        await poll(listening, within=30, what="the webhook receiver to listen")
        yield running
    finally:
        process.terminate()
        process.wait(10)


async def signing_secret(api: Service, auth: dict[str, str]) -> str:
    async with aiohttp.ClientSession(headers=auth) as session, session.get(f"{api.url}/webhooks/secret") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Cache-Control"] == "no-store"
        secret: str = (await response.json())["webhook_secret"]["secret"]
        return secret


async def job(api: Service, auth: dict[str, str], job_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=auth) as session, session.get(f"{api.url}/jobs/{job_id}") as response:
        found: dict[str, Any] = (await response.json())["job"]
        return found


async def cancel(api: Service, auth: dict[str, str], job_id: str) -> None:
    async with (
        aiohttp.ClientSession(headers=auth) as session,
        session.post(f"{api.url}/jobs/{job_id}/cancel") as response,
    ):
        assert response.status == 200, await response.text()


def delivered(received: list[dict[str, Any]], job_id: str) -> dict[str, list[dict[str, Any]]]:
    """The verified deliveries about one job, by event type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in received:
        if item["verified"] and item["payload"]["data"]["id"] == job_id:
            found.setdefault(item["payload"]["type"], []).append(item)
    return found


async def dead_letters(amqp: AbstractRobustConnection, topology: Topology) -> list[tuple[Any, str]]:
    """(the webhook delivery, the reason) of every dead letter, taken off the queue."""
    channel = await amqp.channel()
    queue = await channel.declare_queue(topology.dead_letter_queue, passive=True)
    found = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        _, payload = decode(message.body)
        found.append((payload, str((message.headers or {})[REASON_HEADER])))
    await channel.close()
    return found


async def test_webhooks_are_signed_filtered_retried_recorded_and_dead_lettered(
    service_env: dict[str, str],
    log_dir: Path,
    api_key: dict[str, str],
    photo: bytes,
    amqp: AbstractRobustConnection,
    topology: Topology,
) -> None:
    env = {**service_env, **FAST, "WEBHOOK_MAX_ATTEMPTS": "3"}
    api = start("api", env, log_dir, port=free_port())
    worker: Service | None = None
    try:
        await wait_healthy(api)
        async with receiver(await signing_secret(api, api_key), log_dir) as hooks:
            # Canceled before any worker runs: its webhook is sent once one does.
            canceled = await submit_job(api.url, photo, api_key, webhook_url=f"{hooks.url}/ok")
            await cancel(api, api_key, canceled["id"])
            worker = start("worker", env, log_dir)
            await wait_for_log(worker, "worker.consuming")
            flaky = await submit_job(
                api.url, photo, api_key, webhook_url=f"{hooks.url}/flaky", webhook_events="started,succeeded"
            )
            down = await submit_job(api.url, photo, api_key, webhook_url=f"{hooks.url}/down")
            unwanted = await submit_job(api.url, photo, api_key, webhook_url=f"{hooks.url}/ok", webhook_events="failed")
            for submitted in (flaky, down, unwanted):
                await wait_for_status(api.url, submitted["id"], {"succeeded"}, headers=api_key)

            async def flaky_delivered() -> dict[str, list[dict[str, Any]]] | None:
                found = delivered(await hooks.received(), flaky["id"])
                return found if [item["status"] for item in found.get("job.succeeded", [])] == [500, 200] else None

            flaky_hooks = await poll(flaky_delivered, within=30, what="the flaky receiver's retried delivery")
            assert flaky_hooks is not None
            # Both attempts at one message carry one webhook-id; `started` was asked for, and retried too.
            assert len({item["webhook_id"] for item in flaky_hooks["job.succeeded"]}) == 1
            assert [item["status"] for item in flaky_hooks["job.started"]] == [500, 200]
            succeeded = flaky_hooks["job.succeeded"][-1]["payload"]["data"]
            assert (succeeded["status"], succeeded["output_url"]) == ("succeeded", f"/jobs/{flaky['id']}/output")

            dead = await poll(
                lambda: dead_letters(amqp, topology), within=30, what="the undeliverable webhook to be dead-lettered"
            )
            [(letter, reason)] = dead
            assert letter.url == f"{hooks.url}/down"
            assert reason == "webhook not delivered after 3 attempts; last: HTTP 500"

            received = await hooks.received()
            assert all(item["verified"] for item in received)
            assert [item["payload"]["type"] for item in received if item["path"] == "down"] == ["job.succeeded"] * 3
            assert delivered(received, unwanted["id"]) == {}  # it asked for failures only
            assert list(delivered(received, canceled["id"])) == ["job.canceled"]

            # Every attempt is on its job, in order.
            shown = (await job(api, api_key, flaky["id"]))["webhook"]
            assert shown["url"] == f"{hooks.url}/flaky"
            assert shown["events"] == ["started", "succeeded"]
            attempts = [(d["event"], d["attempt"], d["outcome"], d["response_status"]) for d in shown["deliveries"]]
            # A started retry and the succeeded message's first attempt may go either way round.
            assert sorted(attempts) == [
                ("job.started", 1, "failed", 500),
                ("job.started", 2, "delivered", 200),
                ("job.succeeded", 1, "failed", 500),
                ("job.succeeded", 2, "delivered", 200),
            ]
            assert all(d["duration_ms"] >= 0 for d in shown["deliveries"])
            down_attempts = (await job(api, api_key, down["id"]))["webhook"]["deliveries"]
            assert [(d["attempt"], d["outcome"]) for d in down_attempts] == [
                (1, "failed"),
                (2, "failed"),
                (3, "failed"),
            ]
    finally:
        codes = [service.stop() for service in (api, worker) if service is not None]
    assert codes == [0, 0]


async def test_a_worker_killed_mid_delivery_leaves_it_to_another_and_nothing_is_lost(
    service_env: dict[str, str], log_dir: Path, api_key: dict[str, str], photo: bytes, pool: asyncpg.Pool
) -> None:
    env = {**service_env, **FAST}
    api = start("api", env, log_dir, port=free_port())
    workers: list[Service] = []
    try:
        await wait_healthy(api)
        async with receiver(await signing_secret(api, api_key), log_dir) as hooks:
            workers.append(start("worker", {**env, "WORKER_ID": "first"}, log_dir))
            submitted = [
                (await submit_job(api.url, photo, api_key, webhook_url=f"{hooks.url}/slow"))["id"] for _ in range(20)
            ]

            async def several_in_flight() -> bool:
                return int((await hooks.report())["in_flight"]) >= 3

            await poll(several_in_flight, within=60, what="deliveries to be in flight")
            workers[0].process.send_signal(signal.SIGKILL)
            workers[0].process.wait(10)
            at_kill = await hooks.received()
            workers.append(start("worker", {**env, "WORKER_ID": "second"}, log_dir))

            async def all_delivered() -> list[dict[str, Any]] | None:
                received = await hooks.received()
                done = all("job.succeeded" in delivered(received, job_id) for job_id in submitted)
                return received if done else None

            received = await poll(all_delivered, within=120, what="every job's webhook to arrive")
            assert received is not None
            ids = Counter(item["webhook_id"] for item in received)
            # One message per job, however many times it arrived; the ones in flight at the kill arrived again.
            assert len(ids) == len(submitted)
            assert all(item["verified"] for item in received)
            in_flight_at_kill = {item["webhook_id"] for item in at_kill[-3:]}
            assert all(ids[webhook_id] >= 2 for webhook_id in in_flight_at_kill)
            for job_id in submitted:
                # Recorded once the receiver has answered (the slow path answers after a pause).

                async def recorded(job_id: str = job_id) -> dict[str, Any] | None:
                    found = await job(api, api_key, job_id)
                    attempts = found["webhook"]["deliveries"]
                    return found if attempts and attempts[-1]["outcome"] == "delivered" else None

                final = await poll(recorded, within=30, what=f"job {job_id}'s delivery to be recorded")
                assert final is not None
                assert final["status"] == "succeeded"
    finally:
        api.stop()
        for worker in workers:
            worker.stop()
    stuck = await pool.fetchval("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
    assert stuck == 0
