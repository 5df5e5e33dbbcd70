"""The `luster` command line: submit photos, read a job, list jobs; configured by LUSTER_API_URL and LUSTER_API_KEY."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from luster_client.batch import Batch, Options, plan
from luster_client.client import MAX_WAIT_S, AsyncLuster
from luster_client.config import Config
from luster_client.errors import ConfigError, LusterClientError
from luster_client.models import STYLES, TIERS, Job
from luster_client.progress import Progress

# The API has no route for a key to read or manage itself: keys are an operator's business.
KEYS_MESSAGE = (
    "luster: API keys are managed by an operator, not through the API: yours creates, lists and revokes them\n"
    "with `python -m services.api.apikeys`. The key luster uses is the one in LUSTER_API_KEY."
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="luster", description="Enhance listing photos with Luster.")
    commands = top.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit one job per photo (a rerun never submits one twice)")
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


async def _submit(client: AsyncLuster, args: argparse.Namespace) -> int:
    missing = [str(path) for path in args.paths if not path.is_file()]
    if missing:
        print(f"luster: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    options = Options(args.tier, args.style, args.prompt, args.out, args.wait or args.out is not None, args.timeout)
    items = await asyncio.to_thread(plan, args.paths, options)
    try:
        succeeded = await Batch(client, options, Progress()).run(items)
    except TimeoutError:
        print(f"\nluster: gave up waiting after {args.timeout:g} s; run it again to resume", file=sys.stderr)
        return 1
    for item in items:
        assert item.job is not None
        print(f"{item.path}\t{item.job.id}\t{item.job.status}")
    return 0 if succeeded else 1


async def _run(config: Config, args: argparse.Namespace) -> int:
    async with AsyncLuster.from_config(config) as client:
        if args.command == "submit":
            return await _submit(client, args)
        if args.command == "status":
            print(describe(await client.get_job(args.job_id, wait=args.wait)))
            return 0
        page = await client.list_jobs(limit=args.limit, status=args.status)
        for job in page.jobs:
            print(describe(job))
        return 0


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
