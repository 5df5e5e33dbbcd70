"""One fault-injection scenario: its processes, its load, its faults on a timeline, its drain and verdict.

A test drives it like this:

    await chaos.start(workers=2)              # api, monitor and workers as real processes
    load = chaos.submit(chaos.size.jobs)      # concurrent POST /jobs with Idempotency-Keys, in the background
    ... inject faults, marking chaos.fault("...") and chaos.fault_over("...") ...
    await chaos.drain()                       # until every accepted job is terminal and the queues settle
    result = await chaos.finish()             # SIGTERM everything, then measure (verdict.py)
    chaos.conclude()                          # record the row of the results table, assert the guarantees
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from shared.db import DATABASE_DOWN_ERRORS
from shared.domain import Tier
from shared.topology import RETRY_DELAYS_MS, Topology
from tests.chaos import report
from tests.chaos.load import Client
from tests.chaos.queues import BrokerProbe, work_and_retry_queues
from tests.chaos.size import Size
from tests.chaos.stack import Exit, Managed, Stack, wait_http
from tests.chaos.stores import stored_for
from tests.chaos.verdict import TERMINAL, Expected, Result, complete_outputs, measure
from tests.conftest import bearer
from tests.harness.poll import poll


class Chaos:
    """The harness of one scenario; the `chaos` fixture builds it and closes it whatever happens."""

    def __init__(
        self,
        scenario: str,
        *,
        size: Size,
        env: dict[str, str],
        log_dir: Path,
        pool: asyncpg.Pool,
        topology: Topology,
        amqp_url: str,
        photo: bytes,
    ) -> None:
        self.scenario = scenario
        self.size = size
        self.env = env
        self.log_dir = log_dir
        self.pool = pool
        self.topology = topology
        self.photo = photo
        self.uploads_dir = Path(env["UPLOADS_DIR"])
        self.stored = stored_for(env)  # OUTPUTS_DIR, or the bucket when the services run with STORAGE=s3
        self.stack = Stack(env, log_dir, self._on_exit)
        self.probe = BrokerProbe(amqp_url, topology, name=scenario)
        self.result = Result(scenario, jobs=0, size=size.label)
        self.timeline: list[tuple[float, str]] = []
        self.t0 = time.time()
        self.fault_end: float | None = None
        self.summary: list[str] = []
        # Exit codes of deaths nobody asked for that the scenario expects: SIGKILL by a fault hook, or
        # the watchdog's non-zero exit after a broker outage (the platform restarts the service).
        self.expected_exit_codes: set[int] = set()
        self.recorded = False
        self._client: Client | None = None
        self._loads: list[asyncio.Task[None]] = []
        self._load_done_at: float | None = None

    # --- processes -----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        assert self._client is not None, "start() the api first"
        return self._client

    @property
    def api(self) -> Managed:
        return self.stack.services["api"]

    @property
    def workers(self) -> list[Managed]:
        return self.stack.of_kind("worker")

    async def start(
        self,
        *,
        workers: int = 2,
        worker_env: dict[str, str] | None = None,
        monitor: bool = True,
        restart_workers: bool = True,
    ) -> None:
        api = self.stack.start("api", "api")
        if monitor:
            self.stack.start("monitor", "monitor", restart=False)
        self.start_workers(workers, env=worker_env, restart=restart_workers)
        await wait_http(api, healthy=True)
        if monitor:
            await wait_http(self.stack.services["monitor"], healthy=False)
        if workers:
            await self.workers_consuming(workers)
        headers = await bearer(self.pool, owner=f"chaos-{self.topology.prefix}")
        self._client = Client(api.url, self.photo, headers=headers, prefix=self.scenario.split(".")[0])
        await self._client.create_asset()

    def start_workers(self, count: int, *, env: dict[str, str] | None = None, restart: bool = True) -> list[Managed]:
        first = len(self.workers) + 1
        names = [f"worker-{n}" for n in range(first, first + count)]
        return [self.stack.start("worker", name, env=env, restart=restart) for name in names]

    async def workers_consuming(self, count: int, *, deadline_s: float = 90.0) -> float:
        """Until the broker itself reports `count` consumers on every work queue; returns the seconds waited."""
        queues = [self.topology.work_queue(tier) for tier in Tier]

        async def consuming() -> bool:
            states = await self.probe.try_states(queues)
            return states is not None and all(state.consumers >= count for state in states)

        started = time.monotonic()
        await self.until(f"{count} consumers on {queues}", consuming, deadline_s=deadline_s, every=0.25)
        return time.monotonic() - started

    async def monitor_consuming(self) -> bool:
        states = await self.probe.try_states([self.topology.monitor_queue])
        return states is not None and states[0].consumers >= 1

    def _on_exit(self, exit_: Exit) -> None:
        self.timeline.append((exit_.at, f"{exit_.name}#{exit_.incarnation} {exit_.cause} rc={exit_.returncode}"))

    def deaths(self, kind: str = "worker") -> list[Exit]:
        """Exits the harness did not ask for (the fault hooks' kills, crashes), of services of `kind`."""
        names = {managed.name for managed in self.stack.of_kind(kind)}
        return [exit_ for exit_ in self.stack.exits if exit_.name in names and exit_.cause == "died"]

    # --- load ----------------------------------------------------------------------------------

    def submit(self, count: int, *, over_s: float = 0.0, file_share: float = 0.0) -> asyncio.Task[None]:
        """Submit `count` jobs in the background, their starts spread over `over_s` seconds."""
        self.result.jobs += count
        task = asyncio.create_task(self._submit(count, over_s, file_share))
        self._loads.append(task)
        return task

    async def _submit(self, count: int, over_s: float, file_share: float) -> None:
        await self.client.submit(count, over_s=over_s, file_share=file_share)
        self._load_done_at = time.time()

    async def query(self, sql: str, *args: Any) -> Any:
        """One value from PostgreSQL, retried while it restarts."""
        while True:
            try:
                return await self.pool.fetchval(sql, *args, timeout=10)
            except DATABASE_DOWN_ERRORS:
                await asyncio.sleep(0.5)

    async def finished(self) -> int:
        return int(await self.query("SELECT count(*) FROM jobs WHERE status = ANY($1::text[])", TERMINAL))

    async def until(
        self, what: str, check: Callable[[], Awaitable[bool]], *, deadline_s: float = 300.0, every: float = 0.2
    ) -> None:
        """`poll`, failing with the scenario's name and the last moments of its timeline."""
        await poll(
            check,
            within=deadline_s,
            every=every,
            what=lambda: f"{what} ({self.scenario}; timeline: {self.timeline[-10:]})",
        )

    async def accepted_at_least(self, count: int) -> None:
        async def check() -> bool:
            return len(self.client.ledger.accepted) >= count

        await self.until(f"{count} accepted jobs", check)

    async def finished_at_least(self, count: int) -> None:
        async def check() -> bool:
            return await self.finished() >= count

        await self.until(f"{count} finished jobs", check)

    async def takeovers(self) -> int:
        """Starts of a job another worker had started (a redelivered message took it over)."""
        return int(await self.query("SELECT count(*) FROM job_events WHERE details->>'takeover' = 'true'"))

    async def processing_worker(self) -> Managed | None:
        """A live worker that holds a `processing` job right now."""
        holders = await self.pool.fetch("SELECT DISTINCT worker_id FROM jobs WHERE status = 'processing'")
        for record in holders:
            managed = self.stack.by_worker_id(record["worker_id"] or "")
            if managed is not None:
                return managed
        return None

    # --- faults --------------------------------------------------------------------------------

    def fault(self, what: str) -> float:
        """Mark a fault on the timeline; returns its moment, for recoveries measured from it."""
        at = time.time()
        self.timeline.append((at, f"fault: {what}"))
        return at

    def fault_over(self, what: str, *, at: float | None = None) -> None:
        self.fault_end = at or time.time()
        self.timeline.append((self.fault_end, f"over: {what}"))

    def faults_over_with_last_death(self) -> list[Exit]:
        """For faults the workers inflict on themselves: they end with the last worker that died."""
        deaths = self.deaths()
        if deaths:
            self.fault_over("the last worker death", at=max(death.at for death in deaths))
        return deaths

    def note(self, text: str) -> None:
        """A short fact for the notes column of the results table."""
        self.summary.append(text)

    def expect(self, condition: bool, problem: str) -> None:
        """A scenario-specific check; a failed one is reported with the guarantees."""
        if not condition:
            self.result.problems.append(problem)

    # --- verdict -------------------------------------------------------------------------------

    async def drain(self, *, deadline_s: float | None = None) -> None:
        """Wait for the client, then until every accepted job is terminal, then for the queues to settle."""
        deadline_s = deadline_s or 120 + 2.0 * self.result.jobs
        async with asyncio.timeout(deadline_s):
            await asyncio.gather(*self._loads)
        load_done = self._load_done_at or time.time()
        with contextlib.suppress(AssertionError):
            await self.until("every accepted job terminal", self._all_terminal, deadline_s=deadline_s)
        self.result.drain_s = round(time.time() - load_done, 1)
        # A duplicate message may still wait out its retry delay before a worker skips it, and the
        # sweepers give an unfinished write JOB_TIMEOUT + 3 heartbeats before they remove it.
        settle_s = max(RETRY_DELAYS_MS) / 1000 * self.size.retry_scale * 1.25 + float(self.env["JOB_TIMEOUT"]) + 20
        with contextlib.suppress(AssertionError):
            await self.until("work and retry queues to empty", self._settled, deadline_s=settle_s)

    async def _all_terminal(self) -> bool:
        accepted = list(self.client.ledger.accepted.values())
        done = await self.query(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status = ANY($2::text[])", accepted, TERMINAL
        )
        return int(done) == len(accepted)

    async def _settled(self) -> bool:
        """No message waiting in a work or retry queue, none left in the outbox, no write left unfinished."""
        states = await self.probe.try_states(work_and_retry_queues(self.topology))
        unpublished = await self.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        unfinished = await self.stored.unfinished_outputs()
        return states is not None and not any(state.messages for state in states) and not unpublished and not unfinished

    async def finish(self) -> Result:
        """SIGTERM every service, then measure; the services' exit codes are part of the verdict."""
        # A worker restarted a moment ago may still be importing, before its SIGTERM handler exists.
        live = [worker for worker in self.workers if not worker.held]
        if live:
            await self.workers_consuming(len(live))
        codes = await self.stack.stop_all()
        unclean = {name: code for name, code in codes.items() if code != 0}
        self.result.unclean_exits = len(unclean)
        if unclean:
            self.result.notes["unclean_exits"] = unclean
        if self.fault_end is None and self.result.recover_s is None:
            self.fault_end = await self._last_retry()
        outputs = await self.stored.outputs()
        await measure(self.pool, self.result, self.client.ledger, outputs, fault_end=self.fault_end)
        states = await self.probe.try_states(work_and_retry_queues(self.topology))
        self.result.queued_messages = sum(s.messages for s in states) if states is not None else -1
        dead = await self.probe.try_states([self.topology.dead_letter_queue])
        self.result.notes["dead_letters"] = dead[0].messages if dead else None
        crashes = [e for e in self.stack.exits if e.cause == "died" and e.returncode not in self.expected_exit_codes]
        self.expect(not crashes, f"unexpected exits: {[(e.name, e.incarnation, e.returncode) for e in crashes]}")
        self.result.notes.update(
            outcomes=dict(self.client.ledger.outcomes),
            exits=[(e.name, e.incarnation, e.returncode, e.cause) for e in self.stack.exits],
            timeline=[f"+{at - self.t0:.2f}s {what}" for at, what in self.timeline[-40:]],
            logs=str(self.log_dir),
        )
        return self.result

    async def _last_retry(self) -> float | None:
        """Where a fault has no moment of its own (engine faults), it ends when the last retry it caused
        is due: the retry's time plus its backoff delay, which is the design, not the recovery.
        """
        last = await self.query(
            """
            SELECT max(created_at + make_interval(secs => coalesce((details->>'delay_ms')::float, 0) / 1000))
            FROM job_events WHERE type = 'job.retrying'
            """
        )
        return None if last is None else float(last.timestamp())

    async def complete_outputs(self, expected: Expected) -> list[str]:
        """After `finish`: read every succeeded job's output back whole (see verdict.complete_outputs)."""
        return await complete_outputs(self.pool, self.result, self.stored, expected=expected)

    def conclude(self) -> None:
        """Record this scenario's row of the results table, then assert every guarantee."""
        violations = self.result.violations()
        row = {**self.result.as_json(), "violations": violations, "summary": ", ".join(self.summary)}
        report.record(row)
        self.recorded = True
        assert not violations, f"{self.scenario}: {violations}\nnotes: {self.result.notes}"

    def record_unfinished(self, reason: str) -> None:
        if not self.recorded:
            self.result.problems.append(reason)
            violations = self.result.violations()
            summary = ", ".join(self.summary)
            report.record({**self.result.as_json(), "violations": violations, "summary": summary})
            self.recorded = True

    async def close(self) -> None:
        await self.stack.stop_all(grace_s=20)
        for task in self._loads:
            task.cancel()
        await asyncio.gather(*self._loads, return_exceptions=True)
        await self.probe.close()
        await self.stored.close()
