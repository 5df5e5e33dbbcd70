"""Scenario 16: workers SIGKILLed while an output is half-way to the object store (STORAGE=s3).

Every service runs on one bucket of the session's S3 server; nothing is on a shared disk. The workers'
`kill_during_output` hook hands each output PutObject, with its probability, a body that sends half
the bytes and then SIGKILLs the worker, so the request is cut on the wire. Meanwhile a reader fetches
each job's output once it has succeeded, through the api's redirect to a presigned URL, as a client
would. The local engine is deterministic, so every output served or stored must be, byte for byte,
what the engine makes of the scenario's photo for that job; after the run every succeeded job's output
is read back from the bucket and compared, and the bucket is asked for unfinished multipart uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import asyncpg
import pytest

from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from services.worker.engines.styles import adjustments_for
from shared.domain import Style, Tier
from shared.imaging import DEFAULT_MAX_PIXELS
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE
from tests.chaos.verdict import output_problem

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(SIZE.timeout())]

SIGKILL_EXIT = -9
FAULTS = "kill_during_output:0.3"
KILL_EVENT = "fault.kill_during_output"


class Made:
    """What the local engine makes of the scenario's photo for a job; computed once per distinct recipe."""

    def __init__(self, photo: bytes) -> None:
        self.photo = photo
        self._made: dict[str, bytes] = {}

    async def __call__(self, job: asyncpg.Record) -> bytes:
        tier, style, prompt = Tier(job["tier"]), Style(job["style"]), job["prompt"]
        # The prompt counts only through the adjustments it asks for; the job number in it does not.
        recipe = f"{tier.value} {style.value} {adjustments_for(style, prompt)!r}"
        if recipe not in self._made:
            request = EnhanceRequest(image=self.photo, prompt=prompt, tier=tier, style=style)
            result = await asyncio.to_thread(enhance_sync, request, max_pixels=DEFAULT_MAX_PIXELS)
            self._made[recipe] = result.image
        return self._made[recipe]


class Reader:
    """A client fetching each succeeded job's output once, through GET /jobs/{id}/output and its redirect."""

    def __init__(self, chaos: Chaos, made: Made) -> None:
        self.chaos = chaos
        self.made = made
        self.read: set[str] = set()
        self.problems: list[str] = []

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            await self.catch_up()
            await asyncio.sleep(0.5)

    async def catch_up(self) -> None:
        """Read every succeeded job's output not read yet."""
        jobs = await self.chaos.pool.fetch("SELECT id::text, tier, style, prompt FROM jobs WHERE status = 'succeeded'")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for job in jobs:
                if job["id"] not in self.read:
                    await self._read(session, job)
                    self.read.add(job["id"])

    async def _read(self, session: aiohttp.ClientSession, job: asyncpg.Record) -> None:
        url = f"{self.chaos.api.url}/jobs/{job['id']}/output"
        headers = self.chaos.client.headers  # the API key; the presigned URL carries its own signature
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status != 307:
                self.problems.append(f"{job['id']}: GET output answered {response.status}")
                return
            location = response.headers["Location"]
        async with session.get(location) as response:
            data = await response.read()
        problem = await asyncio.to_thread(output_problem, data, await self.made(job))
        if problem is not None:
            self.problems.append(f"{job['id']}: served {problem}")


def kills_mid_write(chaos: Chaos) -> list[tuple[int, int]]:
    """(bytes sent, bytes of the output) for every kill the hook logged just before it fired."""
    found = []
    for worker in chaos.workers:
        for path in worker.logs():
            for line in path.read_text(errors="replace").splitlines():
                if KILL_EVENT in line:  # the services log JSON lines outside development
                    entry = json.loads(line)
                    found.append((int(entry["sent"]), int(entry["of"])))
    return found


async def test_worker_killed_mid_write_to_the_object_store(bucket_chaos: Chaos, jobs: int) -> None:
    """16. Worker SIGKILLed mid-write of an output to the object store (no partial object served)."""
    chaos = bucket_chaos
    made = Made(chaos.photo)
    chaos.expected_exit_codes.add(SIGKILL_EXIT)
    await chaos.start(workers=2, worker_env={"LUSTER_FAULTS": FAULTS})
    reader = Reader(chaos, made)
    reading = asyncio.create_task(reader.run())
    # A quarter of the jobs bring their own photo, so uploads go to the bucket under load too.
    chaos.submit(jobs, over_s=chaos.size.scaled(5, 40), file_share=0.25)
    await chaos.drain()
    for _ in range(3):  # a 30 % hook silent through 25 jobs is rare (0.7 ** 25), but then give it more jobs
        if chaos.deaths():
            break
        chaos.submit(jobs, over_s=chaos.size.scaled(5, 40))
        await chaos.drain()
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    await reader.catch_up()  # every succeeded job's output served once, wherever the reader had got to
    deaths = chaos.faults_over_with_last_death()
    await chaos.finish()
    incomplete = await chaos.complete_outputs(made)
    kills = kills_mid_write(chaos)
    chaos.expect(len(deaths) > 0, f"{FAULTS} never fired")
    chaos.expect(all(d.returncode == SIGKILL_EXIT for d in deaths), "a worker died other than by the hook's SIGKILL")
    chaos.expect(len(kills) == len(deaths), f"{len(deaths)} worker deaths but {len(kills)} kills logged mid-write")
    chaos.expect(all(0 < sent < of for sent, of in kills), f"a kill did not land mid-body: {kills}")
    chaos.expect(not reader.problems, f"outputs served incomplete or not at all: {reader.problems[:5]}")
    chaos.result.notes.update(kills_mid_write=kills[:10], served_problems=reader.problems[:10])
    chaos.note(f"{len(kills)} kills mid-PUT")
    chaos.note(f"{len(reader.read)} outputs served through presigned URLs, {len(reader.problems)} not whole")
    chaos.note(f"{chaos.result.notes['outputs_read']} read back from the bucket, {len(incomplete)} not whole")
    chaos.note(f"{chaos.result.failed} failed (attempts used up by kills)")
    chaos.conclude()
