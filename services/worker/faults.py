"""Test-only fault injection: off unless `LUSTER_FAULTS` names faults and their probabilities.

    LUSTER_FAULTS=kill_after_output:0.2,kill_after_commit:0.2,engine_hang:1.0,engine_transient:0.3

The kill points SIGKILL the worker (no cleanup, no ack, as a crash or an OOM kill would); the engine
faults are applied by `engines/faulty.py`. The fault-injection suite (`tests/chaos/`) sets them.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass, fields
from typing import Literal

KillPoint = Literal["after_output", "after_commit"]


def happens(probability: float) -> bool:
    return probability > 0 and random.random() < probability


@dataclass(frozen=True)
class Faults:
    """The probability of each fault, 0..1; the default injects nothing."""

    kill_after_output: float = 0.0  # the output is stored, the job row not yet updated
    kill_after_commit: float = 0.0  # the outcome is committed, the message not yet acked
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

    @property
    def engine_faults(self) -> bool:
        return self.engine_hang > 0 or self.engine_transient > 0

    def maybe_kill(self, point: KillPoint) -> None:
        """SIGKILL this process with the probability configured for `point`."""
        if happens(getattr(self, f"kill_{point}")):
            os.kill(os.getpid(), signal.SIGKILL)
