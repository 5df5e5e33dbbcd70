"""What a `luster submit` run has done, kept beside its outputs so that a rerun picks up where it stopped.

`.luster-state.json` maps each photo's sha256 to its asset id, and each batch's idempotency key to the
batch's id. It only saves work: were it lost, a rerun finds the photos among the assets uploaded in the last
day (by their sha256) and the batch key gets the same batch back from the API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STATE_FILE = ".luster-state.json"


class State:
    """Photo sha256 → asset id and batch key → batch id, written whole (temporary file, fsync, rename) on change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.assets: dict[str, str] = {}
        self.batches: dict[str, str] = {}
        if path.exists():
            saved = json.loads(path.read_text())
            # A state file of an older luster (one job per photo, "jobs") holds nothing a batch can reuse.
            self.assets = dict(saved.get("assets", {}))
            self.batches = dict(saved.get("batches", {}))

    def record_asset(self, sha256: str, asset_id: str) -> None:
        self.assets[sha256] = asset_id
        self._save()

    def forget_asset(self, sha256: str) -> None:
        self.assets.pop(sha256, None)
        self._save()

    def record_batch(self, key: str, batch_id: str) -> None:
        self.batches[key] = batch_id
        self._save()

    def _save(self) -> None:
        partial = self.path.with_name(f"{self.path.name}.partial")
        with partial.open("w") as file:
            json.dump({"assets": self.assets, "batches": self.batches}, file, indent=1, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(self.path)
