"""How long a newcomer's first photo waits behind another owner's backlog, with fair share on and off.

One owner submits a backlog of `BENCH_FAIR_BACKLOG` photos (1,000 by default); then a second owner
submits one. Only then does a worker start (one process, two slots, the local engine on a small photo),
so the backlog is whole when the newcomer arrives. Measured, side by side in one run: the newcomer's
wait from acceptance to start, and how many of the backlog's jobs started before it. With fair share
off the newcomer waits behind the whole backlog; on (`FAIR_SHARE_QUEUED`, 20 by default), behind at
most that many. `python -m bench.fair_share`; the report goes to bench/results/fair_share.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import asyncpg

from bench.harness import (
    DATABASE_URL,
    bench_headers,
    burst,
    cleanup_broker,
    fresh_database,
    ready,
    start_api,
    upload_asset,
    write_report,
)
from bench.markdown import Report, Section, Verdict, paragraphs, table
from tests.harness.poll import poll

BACKLOG = int(os.environ.get("BENCH_FAIR_BACKLOG", "1000"))
SHARE = 20
WAIT_LIMIT_S = 600.0
MODES = {"fair-off": 0, "fair-on": SHARE}
PORTS = {"fair-off": 8793, "fair-on": 8794}


@dataclass(frozen=True)
class Outcome:
    mode: str
    fair_share_queued: int
    backlog: int
    newcomer_wait_s: float
    backlog_started_before_newcomer: int
    backlog_held_when_newcomer_arrived: int


async def _submit(session: aiohttp.ClientSession, url: str, headers: dict[str, str], asset_id: str) -> str:
    body = {"asset_id": asset_id, "prompt": "bench", "tier": "free"}
    async with session.post(f"{url}/jobs", json=body, headers=headers) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["job"]["id"])


@contextlib.asynccontextmanager
async def _processes(mode: str) -> AsyncIterator[dict[str, subprocess.Popen[bytes]]]:
    env = {"FAIR_SHARE_QUEUED": str(MODES[mode]), "CONCURRENCY": "2", "OTEL_SDK_DISABLED": "true"}
    started = {"api": start_api(mode, PORTS[mode], env)}
    try:
        yield started
    finally:
        for process in started.values():
            process.send_signal(signal.SIGTERM)
        for process in started.values():
            process.wait(60)


async def _until_started(pool: asyncpg.Pool, job_id: str) -> None:
    async def started() -> bool:
        return bool(await pool.fetchval("SELECT started_at IS NOT NULL FROM jobs WHERE id = $1::uuid", job_id))

    await poll(started, within=WAIT_LIMIT_S, what="the newcomer's job to start", every=0.1)


async def _measure(pool: asyncpg.Pool, mode: str) -> Outcome:
    url = f"http://127.0.0.1:{PORTS[mode]}"
    backlog_owner, newcomer_owner = f"{mode}-backlog-{time.time_ns()}", f"{mode}-newcomer-{time.time_ns()}"
    async with _processes(mode) as processes, aiohttp.ClientSession() as session:
        async with asyncio.timeout(60):
            await ready(url)
        owner_headers = await bench_headers(backlog_owner)
        asset = await upload_asset(session, url, owner_headers)

        async def submit_backlog(session: aiohttp.ClientSession, url: str, asset_id: str) -> None:
            await _submit(session, url, owner_headers, asset_id)

        await burst(session, url, asset, submit_backlog, count=BACKLOG, concurrency=8)
        newcomer_headers = await bench_headers(newcomer_owner)
        newcomer = await _submit(session, url, newcomer_headers, await upload_asset(session, url, newcomer_headers))
        held = int(await pool.fetchval("SELECT count(*) FROM jobs WHERE owner = $1 AND held", backlog_owner))
        processes["worker"] = start_api(mode, 0, {"FAIR_SHARE_QUEUED": str(MODES[mode])}, service="worker")
        await _until_started(pool, newcomer)
        measured = await pool.fetchrow(
            """
            SELECT extract(epoch FROM newcomer.started_at - newcomer.created_at)::float8,
                   (SELECT count(*) FROM jobs WHERE owner = $2 AND started_at < newcomer.started_at)
            FROM jobs AS newcomer WHERE newcomer.id = $1::uuid
            """,
            newcomer,
            backlog_owner,
        )
        assert measured is not None
        wait_s, before = measured
    await pool.execute("DELETE FROM jobs WHERE owner = ANY($1::text[])", [backlog_owner, newcomer_owner])
    return Outcome(mode, MODES[mode], BACKLOG, round(wait_s, 2), int(before), held)


async def main() -> dict[str, Any]:
    await fresh_database(DATABASE_URL)  # no other benchmark's rows for this one's relays to publish
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=2)
    try:
        outcomes = [await _measure(pool, mode) for mode in MODES]
    finally:
        await pool.close()
        await cleanup_broker(list(MODES))
    off, on = outcomes
    report = {
        "benchmark": f"a newcomer's first job behind another owner's backlog of {BACKLOG}, fair share off vs on",
        "outcomes": [asdict(outcome) for outcome in outcomes],
        "newcomer_wait_ratio_off_to_on": round(off.newcomer_wait_s / max(on.newcomer_wait_s, 0.01), 1),
    }
    write_report("fair_share", report)
    return report


def over_budget(report: dict[str, Any]) -> str | None:
    """The promise: with fair share on, the newcomer starts after at most the owner's share of the backlog."""
    on = next(outcome for outcome in report["outcomes"] if outcome["fair_share_queued"] > 0)
    ahead = on["backlog_started_before_newcomer"]
    if ahead > SHARE:
        return f"fair share: the newcomer started after {ahead} of the backlog's jobs (share {SHARE})"
    return None


METHOD = """
One owner submits a backlog of photos (`BENCH_FAIR_BACKLOG`); then a second owner submits one. Only then does a
worker start (one process, two slots, the local engine on a small photo), so the backlog is whole when the
newcomer arrives. Measured side by side in one run, fair share off and on (`FAIR_SHARE_QUEUED`): the newcomer's
wait from acceptance to start, and how many of the backlog's jobs started before it. With fair share off the
newcomer waits behind the whole backlog; on, behind at most the owner's share.
"""


def section(report: Report | None) -> Section:
    title, command = "Fair share: a newcomer behind another owner's backlog", "python -m bench.fair_share"
    if report is None:
        return Section(title, command, METHOD)
    header = ("mode", "`FAIR_SHARE_QUEUED`", "newcomer waited", "backlog started first", "backlog held on arrival")
    rows = [
        (
            outcome["mode"],
            outcome["fair_share_queued"],
            f"{outcome['newcomer_wait_s']} s",
            f"{outcome['backlog_started_before_newcomer']} of {outcome['backlog']}",
            outcome["backlog_held_when_newcomer_arrived"],
        )
        for outcome in report["outcomes"]
    ]
    results = paragraphs(
        table(header, rows),
        f"The newcomer waited {report['newcomer_wait_ratio_off_to_on']}× as long with fair share off.",
    )
    on = next(outcome for outcome in report["outcomes"] if outcome["fair_share_queued"] > 0)
    verdict = Verdict(
        f"with fair share on, at most {SHARE} of the backlog's jobs start before the newcomer's",
        f"{on['backlog_started_before_newcomer']}",
        over_budget(report),
    )
    return Section(title, command, METHOD, results, verdict)


if __name__ == "__main__":
    asyncio.run(main())
