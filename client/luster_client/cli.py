"""The `luster` command line: submit photos as batches, read and list batches and jobs; configured by
LUSTER_API_URL and LUSTER_API_KEY."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from luster_client.batch import Options, Submission, plan
from luster_client.client import MAX_WAIT_S, AsyncLuster
from luster_client.config import Config
from luster_client.errors import ConfigError, LusterClientError
from luster_client.follow import POLL_S
from luster_client.models import STYLES, TIERS, Batch, BatchSummary, Job
from luster_client.progress import Progress, batch_line, tally

# The API has no route for a key to read or manage itself: keys are an operator's business.
KEYS_MESSAGE = (
    "luster: API keys are managed by an operator, not through the API: yours creates, lists and revokes them\n"
    "with `python -m services.api.apikeys`. The key luster uses is the one in LUSTER_API_KEY."
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="luster", description="Enhance listing photos with Luster.")
    commands = top.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="upload photos and submit them as one batch (never twice)")
    submit.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    submit.add_argument("--tier", choices=TIERS, default="free")
    submit.add_argument("--style", choices=STYLES, default="default")
    submit.add_argument("--prompt", help="what to enhance, in words (optional with a style)")
    submit.add_argument("--wait", action="store_true", help="wait for every job, showing progress")
    submit.add_argument("--out", type=Path, help="download outputs here (implies --wait)")
    submit.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most (default 3600)")
    status = commands.add_parser("status", help="show a job")
    status.add_argument("job_id")
    status.add_argument("--wait", type=int, default=None, metavar="N", help=f"wait up to N s (≤ {MAX_WAIT_S})")
    jobs = commands.add_parser("jobs", help="list your jobs, newest first")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--status", choices=("queued", "processing", "succeeded", "failed", "canceled"))
    batches = commands.add_parser("batches", help="list your batches, newest first")
    batches.add_argument("--limit", type=int, default=20)
    batch = commands.add_parser("batch", help="show a batch and its jobs")
    batch.add_argument("batch_id")
    batch.add_argument("--wait", action="store_true", help="wait until every job has finished, showing progress")
    batch.add_argument("--zip", type=Path, metavar="FILE", help="download every succeeded output in one zip")
    commands.add_parser("keys", help="where API keys come from")
    return top


def describe(job: Job) -> str:
    lines = [f"{job.id}  {job.status}  tier={job.tier} style={job.style}  created {job.created_at:%Y-%m-%d %H:%M:%S}"]
    if job.queue_position is not None and not job.finished:
        lines.append(f"  queue position {job.queue_position}")
    if job.eta_seconds is not None:
        lines.append(f"  ETA {job.eta_seconds:.0f} s")
    if job.output_url:
        lines.append(f"  output {job.output_url}")
    if job.error:
        lines.append(f"  error {job.error.code}: {job.error.message}")
    return "\n".join(lines)


def describe_batch(batch: BatchSummary) -> str:
    lines = [f"{batch.id}  {batch.status}  {tally(batch).line()}  created {batch.created_at:%Y-%m-%d %H:%M:%S}"]
    for job in batch.jobs if isinstance(batch, Batch) else []:
        lines.append(f"  {job.id}  {job.status}  tier={job.tier} style={job.style}")
        if job.error:
            lines.append(f"    error {job.error.code}: {job.error.message}")
    return "\n".join(lines)


async def _submit(client: AsyncLuster, args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.paths if not path.is_file()]
    if missing:
        print(f"luster: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    options = Options(args.tier, args.style, args.prompt, args.out, args.wait or args.out is not None, args.timeout)
    items = await asyncio.to_thread(plan, args.paths, options)
    try:
        succeeded = await Submission(client, options, Progress()).run(items)
    except TimeoutError:
        print(f"\nluster: gave up waiting after {args.timeout:g} s; run it again to resume", file=sys.stderr)
        return 1
    for item in items:
        assert item.job is not None
        print(f"{item.path}\t{item.job.id}\t{item.job.status}")
    return 0 if succeeded else 1


async def _batch(client: AsyncLuster, args: argparse.Namespace) -> int:
    batch = await client.get_batch(args.batch_id)
    if args.wait:
        progress = Progress()
        progress.show(batch_line(batch))
        while not batch.finished:
            await asyncio.sleep(POLL_S)
            batch = await client.get_batch(batch.id)
            progress.show(batch_line(batch))
        progress.end()
    print(describe_batch(batch))
    if args.zip is not None:
        print(f"{await client.download_batch_zip(batch.id, args.zip)}")
    return 1 if args.wait and tally(batch).failed else 0


async def _list(client: AsyncLuster, args: argparse.Namespace) -> int:
    if args.command == "batches":
        for summary in (await client.list_batches(limit=args.limit)).batches:
            print(describe_batch(summary))
        return 0
    for job in (await client.list_jobs(limit=args.limit, status=args.status)).jobs:
        print(describe(job))
    return 0


async def _run(config: Config, args: argparse.Namespace) -> int:
    async with AsyncLuster.from_config(config) as client:
        if args.command == "submit":
            return await _submit(client, args)
        if args.command == "batch":
            return await _batch(client, args)
        if args.command == "status":
            print(describe(await client.get_job(args.job_id, wait=args.wait)))
            return 0
        return await _list(client, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "keys":
        print(KEYS_MESSAGE, file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(Config.from_env(os.environ), args))
    except ConfigError as error:
        print(f"luster: {error}", file=sys.stderr)
        return 2
    except LusterClientError as error:
        print(f"\nluster: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
