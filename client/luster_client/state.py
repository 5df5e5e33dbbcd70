"""What a `luster submit` run has done, kept beside its outputs so that a rerun picks up where it stopped.

`.luster-state.json` maps each photo's idempotency key to its job id. It only saves work: were it lost,
the keys alone still give every photo its one job back (the API replays a key it has seen).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_FILE = ".luster-state.json"


class State:
    """Idempotency key → job id, written whole (temporary file, fsync, rename) after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: dict[str, str] = {}
        if path.exists():
            self.jobs = dict(json.loads(path.read_text()).get("jobs", {}))

    def record(self, key: str, job_id: str) -> None:
        self.jobs[key] = job_id
        partial = self.path.with_name(f"{self.path.name}.partial")
        with partial.open("w") as file:
            json.dump({"jobs": self.jobs}, file, indent=1, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(self.path)
