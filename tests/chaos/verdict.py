"""Measuring a scenario after its drain: the client's records against PostgreSQL, RabbitMQ and storage.

accepted        jobs the API acknowledged with a 202, from the client's own records
lost            accepted jobs that are not terminal (or do not exist) after the drain
succeeded twice jobs with more than one job_events row moving them to `succeeded`
dup. outputs    outputs beyond one per succeeded job: files in OUTPUTS_DIR (leftover temp files included),
                or objects under outputs/ in the bucket (an object of a job that did not succeed included)
stuck           jobs of the scenario in a non-terminal status
backward moves  job_events rows that break the state machine (shared.domain.TRANSITIONS, retry edge included)
queued messages ready messages left in the work and retry queues
key mismatches  keys whose job in PostgreSQL is not the one the client was told, or jobs nobody acknowledged

Where a scenario asks (`complete_outputs`), also:
incomplete      succeeded jobs whose output is not, byte for byte, what the engine made for that job
unfinished      writes begun and never finished or cleared away (temp files, multipart uploads)
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from PIL import Image

from shared.domain import TERMINAL_STATUSES, TRANSITIONS, JobStatus
from tests.chaos.load import Ledger
from tests.chaos.stores import Stored, entries

TERMINAL = sorted(status.value for status in TERMINAL_STATUSES)


@dataclass
class Result:
    scenario: str
    jobs: int
    accepted: int = 0
    terminal: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    succeeded_twice: int = 0
    duplicate_outputs: int = 0
    missing_outputs: int = 0
    incomplete_outputs: int = 0
    unfinished_writes: int = 0
    stuck: int = 0
    backward_moves: int = 0
    queued_messages: int = 0
    unpublished_outbox: int = 0
    key_mismatches: int = 0
    unclean_exits: int = 0
    retries: int = 0
    recover_s: float | None = None
    drain_s: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    size: str = ""
    run_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def duplicated(self) -> int:
        return self.succeeded_twice + self.duplicate_outputs

    def violations(self) -> list[str]:
        """Every guarantee this run broke, as readable lines; empty when all held."""
        checks = {
            "lost": self.lost,
            "succeeded twice": self.succeeded_twice,
            "duplicate outputs": self.duplicate_outputs,
            "missing outputs": self.missing_outputs,
            "incomplete outputs": self.incomplete_outputs,
            "unfinished writes": self.unfinished_writes,
            "stuck": self.stuck,
            "backward moves": self.backward_moves,
            "messages left in work/retry queues": self.queued_messages,
            "unpublished outbox rows": self.unpublished_outbox,
            "idempotency key mismatches": self.key_mismatches,
            "services not exiting 0 on SIGTERM": self.unclean_exits,
        }
        found = [f"{name}: {value}" for name, value in checks.items() if value]
        if self.accepted != self.jobs:
            found.append(f"accepted {self.accepted} of {self.jobs} submitted")
        return found + self.problems

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "duplicated": self.duplicated}


def backward_moves(events: list[asyncpg.Record]) -> list[str]:
    """job_events rows that a forward-only history could not contain, per job in id order."""
    bad: list[str] = []
    current: dict[Any, str | None] = {}
    for event in events:
        job, source, target = event["job_id"], event["from_status"], event["to_status"]
        previous = current.get(job)
        if job not in current:
            ok = source is None and target == JobStatus.QUEUED.value
        else:
            ok = (
                previous is not None
                and previous not in TERMINAL
                and source == previous
                and JobStatus(source) in TRANSITIONS[JobStatus(target)]
            )
        if not ok:
            bad.append(f"{job}: {previous} then {source}->{target} ({event['type']})")
        current[job] = target
    return bad


async def measure(
    pool: asyncpg.Pool,
    result: Result,
    ledger: Ledger,
    outputs: set[str],
    *,
    fault_end: float | None,
) -> Result:
    """Fill `result` from PostgreSQL, the stored `outputs` and the client's ledger (the caller measures queues)."""
    jobs = await pool.fetch("SELECT id::text, idempotency_key, status, output_key FROM jobs")
    events = await pool.fetch(
        "SELECT job_id::text, type, from_status, to_status, created_at FROM job_events ORDER BY id"
    )
    accepted = ledger.accepted
    by_id = {job["id"]: job for job in jobs}
    result.accepted = len(accepted)
    result.terminal = sum(1 for job_id in accepted.values() if _status(by_id, job_id) in TERMINAL)
    result.lost = result.accepted - result.terminal
    result.succeeded = sum(1 for job in jobs if job["status"] == JobStatus.SUCCEEDED.value)
    result.failed = sum(1 for job in jobs if job["status"] == JobStatus.FAILED.value)
    result.stuck = sum(1 for job in jobs if job["status"] not in TERMINAL)
    successes = Counter(event["job_id"] for event in events if event["to_status"] == JobStatus.SUCCEEDED.value)
    result.succeeded_twice = sum(1 for n in successes.values() if n > 1)
    result.retries = sum(1 for event in events if event["type"] == "job.retrying")
    _outputs(result, jobs, outputs)
    _keys(result, jobs, accepted)
    moves = backward_moves(events)
    result.backward_moves = len(moves)
    if moves:
        result.notes["backward_examples"] = moves[:5]
    result.unpublished_outbox = int(await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    result.recover_s = recovery(events, fault_end)
    return result


def _status(by_id: dict[str, asyncpg.Record], job_id: str) -> str | None:
    job = by_id.get(job_id)
    return None if job is None else str(job["status"])


def _outputs(result: Result, jobs: list[asyncpg.Record], files: set[str]) -> None:
    expected = {job["output_key"] for job in jobs if job["status"] == JobStatus.SUCCEEDED.value}
    extra = sorted(files - expected)
    result.duplicate_outputs = len(extra)
    result.missing_outputs = len(expected - files)
    if extra:
        result.notes["extra_outputs"] = extra[:10]


def _keys(result: Result, jobs: list[asyncpg.Record], accepted: dict[str, str]) -> None:
    per_key: defaultdict[str | None, list[str]] = defaultdict(list)
    for job in jobs:
        per_key[job["idempotency_key"]].append(job["id"])
    mismatched = [key for key, job_id in accepted.items() if per_key.get(key) != [job_id]]
    unacknowledged = [key for key in per_key if key not in accepted]
    result.key_mismatches = len(mismatched) + len(unacknowledged)
    if mismatched or unacknowledged:
        result.notes["key_mismatches"] = {"mismatched": mismatched[:5], "unacknowledged": unacknowledged[:5]}


def decoded_size(data: bytes) -> tuple[int, int]:
    """The size of a JPEG that decodes to its last byte; raises on a truncated or damaged one."""
    if not data.endswith(b"\xff\xd9"):
        raise ValueError(f"no end-of-image marker ({len(data)} bytes)")
    with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
        image.load()  # Pillow refuses a truncated file unless told otherwise
        return image.size


def output_problem(data: bytes, expected: bytes) -> str | None:
    """None when `data` is exactly the `expected` output; otherwise what is wrong with it."""
    if data == expected:
        return None
    try:
        decoded = f"decodes at {decoded_size(data)}"
    except Exception as error:  # what the damage is, for the report
        decoded = f"does not decode ({error!r})"
    return f"{len(data)} bytes, not the {len(expected)} expected; {decoded}"


# A succeeded job's row (tier, style, prompt) -> the bytes its output must hold.
Expected = Callable[[asyncpg.Record], Awaitable[bytes]]


async def complete_outputs(pool: asyncpg.Pool, result: Result, stored: Stored, *, expected: Expected) -> list[str]:
    """Read back every succeeded job's output: it must be exactly what the engine made for that job.
    Also count the writes left unfinished. Returns the problems found, one line per output.
    """
    succeeded = await pool.fetch(
        "SELECT id::text, tier, style, prompt, output_key FROM jobs WHERE status = 'succeeded' ORDER BY id"
    )
    problems: list[str] = []
    for job in succeeded:
        try:
            data = await stored.read_output(job["output_key"])
        except Exception as error:  # any failure to read it whole is the finding
            problems.append(f"{job['output_key']}: {error!r}")
            continue
        problem = await asyncio.to_thread(output_problem, data, await expected(job))
        if problem is not None:
            problems.append(f"{job['output_key']}: {problem}")
    result.incomplete_outputs = len(problems)
    unfinished = await stored.unfinished_writes()
    result.unfinished_writes = len(unfinished)
    result.notes.update(outputs_read=len(succeeded), incomplete=problems[:10], unfinished=unfinished[:10])
    return problems


def recovery(events: list[asyncpg.Record], fault_end: float | None) -> float | None:
    """Seconds from the end of the last fault to the first job finishing after it (0 if one finished within)."""
    if fault_end is None:
        return None
    finished = [e["created_at"].timestamp() for e in events if e["to_status"] in TERMINAL]
    after = [at for at in finished if at >= fault_end]
    return round(min(after) - fault_end, 2) if after else None


async def half_written(pool: asyncpg.Pool, uploads_dir: Path, *, keep_asset: str | None) -> dict[str, int]:
    """What an interrupted POST could leave behind: a job without its history or announcement, an asset
    no job uses (other than `keep_asset`, the scenario's shared photo), an upload without its asset row.
    """
    unrecorded = await pool.fetchval(
        """
        SELECT count(*) FROM jobs j WHERE NOT EXISTS (
            SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.type = 'job.queued' AND e.from_status IS NULL)
        """
    )
    announced = await pool.fetchval("SELECT count(*) FROM outbox WHERE routing_key LIKE 'job.queued.%'")
    jobs = await pool.fetchval("SELECT count(*) FROM jobs")
    orphan_assets = await pool.fetchval(
        "SELECT count(*) FROM assets a WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.asset_id = a.id)"
        " AND a.id::text IS DISTINCT FROM $1",
        keep_asset,
    )
    keys = {record["storage_key"] for record in await pool.fetch("SELECT storage_key FROM assets")}
    files = entries(uploads_dir)
    return {
        "jobs without their queued history": int(unrecorded),
        "jobs without their announcement": max(int(jobs) - int(announced), 0),
        "assets no job uses": int(orphan_assets),
        "upload files without an asset": len(files - keys),
    }
