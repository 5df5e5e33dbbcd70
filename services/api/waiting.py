"""`Prefer: wait=N` (RFC 7240): answer once the job has finished, or after N seconds, whichever is first.

The wait is driven by PostgreSQL's notification that the job finished (shared/jobwatch.py), not by
reading the job every so often: a waiting request holds no connection and runs no query.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from shared.domain import TERMINAL_STATUSES
from shared.errors import InvalidField
from shared.jobs import Job
from shared.jobwatch import JobWatch

MAX_WAIT_S = 60
PREFER_HEADER = "Prefer"
_WAIT = re.compile(r"^\s*wait\s*=\s*(?P<seconds>[^\s;,]*)\s*$", re.IGNORECASE)


def preferred_wait(request: web.Request) -> int | None:
    """The `wait` preference in seconds (0 to 60), or None without one; other preferences are ignored."""
    for header in request.headers.getall(PREFER_HEADER, ()):
        for preference in header.split(","):
            match = _WAIT.match(preference.split(";", 1)[0])
            if match is None:
                continue
            seconds = match["seconds"]
            digits = seconds.lstrip("0") or "0"  # never int() a long digit string: that costs quadratic time
            if not (seconds.isascii() and seconds.isdigit()) or len(digits) > 2 or int(digits) > MAX_WAIT_S:
                raise InvalidField(f"Prefer: wait takes whole seconds from 0 to {MAX_WAIT_S}", field=PREFER_HEADER)
            return int(digits)
    return None


def applied(wait_s: int) -> dict[str, str]:
    return {"Preference-Applied": f"wait={wait_s}"}


async def until_finished(watch: JobWatch, job_id: uuid.UUID, load: Callable[[], Awaitable[Job]], wait_s: int) -> Job:
    """The job as `load` reads it, once it is finished or `wait_s` seconds have passed."""
    deadline = asyncio.get_running_loop().time() + wait_s
    with watch.watching(job_id) as finished:  # before the read: a finish in between still wakes us
        job = await load()
        while job.status not in TERMINAL_STATUSES:
            try:
                async with asyncio.timeout_at(deadline):
                    await finished.wait()
            except TimeoutError:
                break
            finished.clear()
            job = await load()
    return job
