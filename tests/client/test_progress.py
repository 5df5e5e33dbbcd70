"""The progress lines and the idempotency keys: pure functions, read like their specification."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from luster_client.batch import MAX_BATCH_JOBS, Item, Options, batch_key, groups, idempotency_key, plan
from luster_client.models import Batch, Job
from luster_client.progress import Counts, Progress, count, tally

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


def batch(jobs: list[Job], eta_seconds: float | None = None) -> Batch:
    counts = {status: sum(job.status == status for job in jobs) for status in STATUSES}
    return Batch.model_validate(
        {
            "id": uuid.uuid4(),
            "status": "completed" if all(job.finished for job in jobs) else "running",
            "total": len(jobs),
            "counts": counts,
            "eta_seconds": eta_seconds,
            "webhook_url": None,
            "webhook_events": None,
            "created_at": datetime.now(UTC),
            "completed_at": None,
            "jobs": jobs,
        }
    )


STATUSES = ("queued", "processing", "succeeded", "failed", "canceled")


def item(key: str) -> Item:
    return Item(Path(f"{key}.jpg"), key, sha256=f"sha-{key}", name=key)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


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


def test_a_batch_is_counted_by_the_api_with_its_eta_else_the_longest_of_its_jobs() -> None:
    jobs = [job("succeeded"), job("canceled"), job("queued", 40.2), job("processing", 12.0)]

    assert tally(batch(jobs, eta_seconds=75.5)).line() == "1/4 done, 1 failed, 2 waiting, ETA 76 s"
    assert tally(batch(jobs)).line() == "1/4 done, 1 failed, 2 waiting, ETA 41 s"
    assert tally(batch([job("succeeded")])).line() == "1/1 done, 0 failed, 0 waiting"


def test_photos_go_in_batches_of_a_hundred_the_same_whatever_their_order() -> None:
    items = [item(f"{number:03d}") for number in range(MAX_BATCH_JOBS * 2 + 1)]

    made = groups(items)
    again = groups(list(reversed(items)))

    assert [len(group.items) for group in made] == [MAX_BATCH_JOBS, MAX_BATCH_JOBS, 1]
    assert [group.key for group in made] == [group.key for group in again]
    assert len({group.key for group in made}) == 3


def test_a_batch_key_is_its_photos_keys_kept_apart() -> None:
    assert batch_key([item("a"), item("b")]) != batch_key([item("ab")])
    assert batch_key([item("a"), item("b")]) != batch_key([item("a")])
    assert len(batch_key([item("a")])) == 64


def test_on_a_terminal_every_line_is_redrawn_in_place_and_a_message_goes_above_them() -> None:
    terminal = Terminal()
    progress = Progress(terminal)

    progress.show("batch 1: 0/2 done\nbatch 2: 0/1 done")
    progress.show("batch 1: 1/2 done\nbatch 2: 0/1 done")
    progress.say("a.jpg -> out/a.jpg")
    progress.end()

    assert terminal.getvalue() == (
        "\r\x1b[Jbatch 1: 0/2 done\nbatch 2: 0/1 done"
        "\x1b[1A\r\x1b[Jbatch 1: 1/2 done\nbatch 2: 0/1 done"
        "\x1b[1A\r\x1b[Ja.jpg -> out/a.jpg\nbatch 1: 1/2 done\nbatch 2: 0/1 done"
        "\n"
    )


def test_elsewhere_a_line_is_written_only_when_it_changes() -> None:
    log = io.StringIO()
    progress = Progress(log)

    for text in ("0/1 done", "0/1 done", "1/1 done"):
        progress.show(text)
    progress.say("done")

    assert log.getvalue() == "0/1 done\n1/1 done\ndone\n"
