"""The client: submits jobs concurrently, each with its own Idempotency-Key, and keeps its own records.

A request that fails on the way (connection refused or reset, a timeout, a 5xx) is retried with the
same key until the API acknowledges it with a 202, so "accepted" is what the client was told, not
what the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from shared.domain import Style, Tier

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
REQUEST_TIMEOUT_S = 30.0
GIVE_UP_AFTER_S = 600.0
STYLES = tuple(Style)


@dataclass
class Submission:
    """The client's record of one job it wants: the key it used and what it was told."""

    index: int
    key: str
    with_file: bool
    job_id: str | None = None
    tries: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    accepted_at: float | None = None
    gave_up: str | None = None


@dataclass
class Ledger:
    """Everything the client sent and was told, across every scenario request."""

    submissions: list[Submission] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> dict[str, str]:
        """Idempotency-Key -> job id, for every job the API acknowledged."""
        return {s.key: s.job_id for s in self.submissions if s.job_id is not None}

    def count(self, outcome: str) -> int:
        return self.outcomes[outcome]


def job_body(index: int, asset_id: str) -> dict[str, Any]:
    return {
        "asset_id": asset_id,
        "prompt": f"chaos job {index}: brighter, crisp",
        "tier": (Tier.PREMIUM if index % 2 else Tier.FREE).value,
        "style": STYLES[index % len(STYLES)].value,
    }


class Client:
    """Submits to one API base URL; the API behind it may die and come back on the same port."""

    def __init__(
        self,
        base_url: str,
        photo: bytes,
        *,
        headers: dict[str, str] | None = None,
        concurrency: int = 8,
        prefix: str = "chaos",
    ) -> None:
        self.base_url = base_url
        self.photo = photo
        self.headers = headers or {}  # the API key every request carries
        self.ledger = Ledger()
        self._slots = asyncio.Semaphore(concurrency)
        self._prefix = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.asset_id: str | None = None

    async def create_asset(self) -> str:
        """One uploaded photo that every asset_id job refers to."""
        async with aiohttp.ClientSession(
            headers=self.headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        ) as session:
            deadline = time.monotonic() + 120
            while True:
                form = aiohttp.FormData()
                form.add_field("file", self.photo, filename="listing.jpg", content_type="image/jpeg")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.post(f"{self.base_url}/assets", data=form) as response:
                        if response.status == 201 or response.status == 200:
                            self.asset_id = str((await response.json())["asset"]["id"])
                            return self.asset_id
                if time.monotonic() > deadline:
                    raise AssertionError("could not create the scenario's asset")
                await asyncio.sleep(0.5)

    async def submit(self, count: int, *, over_s: float = 0.0, file_share: float = 0.0) -> None:
        """Submit `count` jobs, their starts spread evenly over `over_s` seconds; returns when all are done."""
        start = len(self.ledger.submissions)
        batch = [
            Submission(index, f"{self._prefix}-{index}", with_file=random.random() < file_share)
            for index in range(start, start + count)
        ]
        self.ledger.submissions.extend(batch)
        gap = over_s / count if count else 0.0
        async with aiohttp.ClientSession(
            headers=self.headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        ) as session:
            tasks = []
            for position, submission in enumerate(batch):
                tasks.append(asyncio.create_task(self._until_accepted(session, submission, delay=position * gap)))
            await asyncio.gather(*tasks)

    async def _until_accepted(self, session: aiohttp.ClientSession, submission: Submission, *, delay: float) -> None:
        await asyncio.sleep(delay)
        deadline = time.monotonic() + GIVE_UP_AFTER_S
        pause = 0.2
        while submission.job_id is None and submission.gave_up is None:
            async with self._slots:
                outcome = await self._attempt(session, submission)
            submission.outcomes[outcome] += 1
            self.ledger.outcomes[outcome] += 1
            if outcome == "202":
                return
            if not _retryable(outcome):
                submission.gave_up = outcome
            elif time.monotonic() > deadline:
                submission.gave_up = f"deadline after {outcome}"
            else:
                await asyncio.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 2.0)

    async def _attempt(self, session: aiohttp.ClientSession, submission: Submission) -> str:
        submission.tries += 1
        headers = {"Idempotency-Key": submission.key}
        try:
            async with session.post(f"{self.base_url}/jobs", headers=headers, **self._body(submission)) as response:
                if response.status == 202:
                    submission.job_id = str((await response.json())["job"]["id"])
                    submission.accepted_at = time.time()
                else:
                    await response.read()
                return str(response.status)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError):
            return "connection_error"
        except TimeoutError:
            return "timeout"

    def _body(self, submission: Submission) -> dict[str, Any]:
        assert self.asset_id is not None
        fields = job_body(submission.index, self.asset_id)
        if not submission.with_file:
            return {"json": fields}
        form = aiohttp.FormData()
        form.add_field("file", self.photo, filename="listing.jpg", content_type="image/jpeg")
        for name, value in fields.items():
            if name != "asset_id":
                form.add_field(name, value)
        return {"data": form}


def _retryable(outcome: str) -> bool:
    return outcome in ("connection_error", "timeout") or (outcome.isdigit() and int(outcome) in RETRYABLE_STATUSES)
