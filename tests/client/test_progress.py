"""The progress line and the idempotency key: pure functions, read like their specification."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from luster_client.batch import Options, idempotency_key, plan
from luster_client.models import Job
from luster_client.progress import Counts, count

OPTIONS = Options(tier="premium", style="dusk", prompt=None, out=None, wait=True)


def job(status: str, eta_seconds: float | None = None) -> Job:
    return Job.model_validate(
        {
            "id": uuid.uuid4(),
            "status": status,
            "tier": "premium",
            "style": "dusk",
            "prompt": "",
            "asset_id": uuid.uuid4(),
            "attempts": 1,
            "output_url": None,
            "error": None,
            "cost": Decimal("0.04"),
            "engine": None,
            "fallback_reason": None,
            "structure_score": None,
            "flagged": False,
            "trace_id": None,
            "created_at": datetime.now(UTC),
            "started_at": None,
            "completed_at": None,
            "eta_seconds": eta_seconds,
        }
    )


def test_the_line_counts_done_failed_and_waiting_with_the_longest_eta() -> None:
    jobs = [job("succeeded"), job("failed"), job("canceled"), job("queued", 40.2), job("processing", 12.0)]

    assert count(jobs).line() == "1/5 done, 2 failed, 2 waiting, ETA 41 s"


def test_an_unknown_eta_is_a_question_mark_and_a_finished_run_has_none() -> None:
    assert count([job("queued")]).line() == "0/1 done, 0 failed, 1 waiting, ETA ?"
    assert Counts(total=2, done=2, failed=0, eta_s=None).line() == "2/2 done, 0 failed, 0 waiting"


def test_the_key_is_the_photo_and_every_option() -> None:
    photo = b"\xff\xd8 a photo"
    same = idempotency_key(photo, OPTIONS)

    assert same == idempotency_key(photo, Options("premium", "dusk", None, Path("elsewhere"), wait=False))
    assert len(same) == 64
    assert same != idempotency_key(photo + b"!", OPTIONS)
    assert same != idempotency_key(photo, Options("free", "dusk", None, None, wait=True))
    assert same != idempotency_key(photo, Options("premium", "dusk", "brighter", None, wait=True))
    # The separators keep the fields apart: no option can stand in for another.
    assert idempotency_key(photo, Options("a", "bc", None, None, True)) != idempotency_key(
        photo, Options("ab", "c", None, None, True)
    )


def test_one_item_per_distinct_photo_and_outputs_named_apart_when_stems_collide(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second, copy = tmp_path / "a" / "x.jpg", tmp_path / "b" / "x.jpg", tmp_path / "copy.jpg"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    copy.write_bytes(b"one")

    items = plan([first, second, copy], OPTIONS)

    assert [item.path for item in items] == [first, second]
    assert [item.name for item in items] == [f"x-{items[0].key[:8]}", f"x-{items[1].key[:8]}"]
