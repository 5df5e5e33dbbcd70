"""The progress lines a `luster submit --wait` (or `luster batch --wait`) run redraws on stderr."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from luster_client.models import Batch, BatchSummary, Job


@dataclass(frozen=True)
class Counts:
    total: int
    done: int
    failed: int
    eta_s: float | None  # the longest estimate among the unfinished jobs: they run side by side

    @property
    def waiting(self) -> int:
        return self.total - self.done - self.failed

    def line(self) -> str:
        eta = "" if not self.waiting else f", ETA {math.ceil(self.eta_s)} s" if self.eta_s is not None else ", ETA ?"
        return f"{self.done}/{self.total} done, {self.failed} failed, {self.waiting} waiting{eta}"


def count(jobs: Iterable[Job]) -> Counts:
    listed = list(jobs)
    etas = [job.eta_seconds for job in listed if not job.finished and job.eta_seconds is not None]
    return Counts(
        total=len(listed),
        done=sum(job.status == "succeeded" for job in listed),
        failed=sum(job.status in ("failed", "canceled") for job in listed),
        eta_s=max(etas) if etas else None,
    )


def tally(batch: BatchSummary) -> Counts:
    """A batch's counts; its ETA is the API's, else (an API without one) the longest of its jobs'."""
    eta = batch.eta_seconds
    if eta is None and isinstance(batch, Batch):
        eta = count(batch.jobs).eta_s
    counts = batch.counts
    return Counts(batch.total, counts.succeeded, counts.failed + counts.canceled, eta)


def batch_line(batch: BatchSummary) -> str:
    return f"batch {batch.id}: {tally(batch).line()}"


class Progress:
    """Redraws its lines on a terminal; elsewhere (a log, a pipe) writes them only when they change."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._write(text if self.tty else f"{text}\n")
        self._last = text

    def say(self, text: str) -> None:
        """A line of its own (a failure, a file written), above the progress lines."""
        self._write(f"{text}\n{self._last}" if self.tty and self._last else f"{text}\n")

    def end(self) -> None:
        if self.tty and self._last:
            self.stream.write("\n")
            self.stream.flush()
            self._last = ""

    def _write(self, text: str) -> None:
        if self.tty:
            # Back to the first of the lines drawn last, and clear from there down.
            up = self._last.count("\n")
            text = (f"\x1b[{up}A" if up else "") + "\r\x1b[J" + text
        self.stream.write(text)
        self.stream.flush()
