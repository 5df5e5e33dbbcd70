"""Test-only fault injection: off unless `LUSTER_FAULTS` names faults and their probabilities.

    LUSTER_FAULTS=kill_after_output:0.2,kill_after_commit:0.2,kill_during_output:0.3,engine_hang:1.0

The kill points SIGKILL the worker (no cleanup, no ack, as a crash or an OOM kill would); the engine
faults are applied by `engines/faulty.py`. `kill_during_output` needs `STORAGE=s3`: it hooks the
output store's client so that a PutObject SIGKILLs the worker half-way through sending its body.
The fault-injection suite (`tests/chaos/`) sets them.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import structlog

if TYPE_CHECKING:
    from shared.storage import Store

ENVIRONMENT_VARIABLE = "LUSTER_FAULTS"
KillPoint = Literal["after_output", "after_commit"]
HOOK_ID = "luster-fault-kill-during-output"
FLUSH_PAUSE_S = 0.05  # lets the event loop hand the first half to the socket before the kill

log = structlog.get_logger()


def happens(probability: float) -> bool:
    return probability > 0 and random.random() < probability


@dataclass(frozen=True)
class Faults:
    """The probability of each fault, 0..1; the default injects nothing."""

    kill_after_output: float = 0.0  # the output is stored, the job row not yet updated
    kill_after_commit: float = 0.0  # the outcome is committed, the message not yet acked
    kill_during_output: float = 0.0  # half the output's bytes are on their way to the store
    engine_hang: float = 0.0  # the engine never answers (the worker's JOB_TIMEOUT must end it)
    engine_transient: float = 0.0  # the engine fails with a transient error

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """`name:probability` pairs separated by commas (a bare name means 1.0); raises ValueError."""
        known = {field.name for field in fields(cls)}
        values: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, raw = (piece.strip() for piece in item.partition(":"))
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(known))}")
            probability = float(raw) if sep else 1.0
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"probability of {name} must be within 0..1, not {raw}")
            values[name] = probability
        return cls(**values)

    @classmethod
    def from_environment(cls) -> Faults:
        """What `LUSTER_FAULTS` asks for; the worker refuses to start when it names no known fault."""
        try:
            return cls.parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))
        except ValueError as error:
            sys.exit(f"luster: invalid configuration: {ENVIRONMENT_VARIABLE}: {error}")

    @property
    def engine_faults(self) -> bool:
        return self.engine_hang > 0 or self.engine_transient > 0

    def maybe_kill(self, point: KillPoint) -> None:
        """SIGKILL this process with the probability configured for `point`."""
        if happens(getattr(self, f"kill_{point}")):
            os.kill(os.getpid(), signal.SIGKILL)

    def arm_output_kill(self, outputs: Store) -> None:
        """Hook `kill_during_output` into the output store's S3 client; nothing when it is not configured.

        Idempotent (botocore keeps one handler per id), so the worker may call it before every write.
        """
        if self.kill_during_output <= 0:
            return
        from shared.storage.s3 import S3Store  # the SDK loads only where the fault is used

        if not isinstance(outputs, S3Store):
            raise TypeError("the kill_during_output fault needs STORAGE=s3")
        # The store keeps its client to itself; only this test hook reaches for it.
        hook = _OutputKill(f"/{outputs.prefix}", self.kill_during_output)
        outputs._client.meta.events.register("before-send.s3.PutObject", hook, unique_id=HOOK_ID)


NO_FAULTS: Final = Faults()


@dataclass(frozen=True)
class _OutputKill:
    """A botocore `before-send` handler: with its probability, swaps an output PUT's body for one that
    sends the first half and then SIGKILLs the process, while the request is on the wire."""

    area: str  # `/<prefix>outputs/`, in the request's path whether the bucket is in the path or the host
    probability: float

    def __call__(self, request: Any, **_: Any) -> None:
        if self.area not in urlsplit(request.url).path or not happens(self.probability):
            return
        body = request.body
        data = body if isinstance(body, bytes) else _read_whole(body)
        request.body = _half_then_kill(data, request.url)


def _read_whole(body: Any) -> bytes:
    body.seek(0)
    data: bytes = body.read()
    return data


async def _half_then_kill(data: bytes, url: str) -> AsyncIterator[bytes]:
    half = len(data) // 2
    yield data[:half]
    await asyncio.sleep(FLUSH_PAUSE_S)
    log.warning("fault.kill_during_output", sent=half, of=len(data), url=url)
    os.kill(os.getpid(), signal.SIGKILL)
    yield data[half:]  # never sent: the process is gone
