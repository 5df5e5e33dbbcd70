"""`luster` end to end against a real api and worker: a batch submitted and downloaded, an interrupted run resumed
without a second batch, batches listed, shown, waited on and zipped, photos sent straight to the object store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import uuid
import zipfile
from pathlib import Path

import asyncpg
import pytest
from PIL import Image

from luster_client.state import STATE_FILE
from tests.client.conftest import Stack, StoreDoor, cli_env, luster, start_cli, start_worker, write_photo
from tests.harness.poll import poll

pytestmark = pytest.mark.integration


def submit_args(photos: list[Path], out: Path) -> list[str]:
    return ["submit", *map(str, photos), "--tier", "premium", "--style", "dusk", "--wait", "--out", str(out)]


async def job_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT id, asset_id, status, batch_id FROM jobs"))


async def counted(pool: asyncpg.Pool, table: str) -> int:
    count: int = await pool.fetchval(f"SELECT count(*) FROM {table}")
    return count


def assert_downloaded(out: Path, photos: list[Path]) -> None:
    assert sorted(path.name for path in out.glob("*.jpg")) == sorted(f"{photo.stem}.jpg" for photo in photos)
    for path in out.glob("*.jpg"):
        with Image.open(path) as image:
            assert image.format == "JPEG"


async def test_submit_waits_shows_progress_and_downloads_every_output(
    stack: Stack, photos: list[Path], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    out = tmp_path / "enhanced"

    run = await luster(submit_args(photos, out), cli_env(stack), tmp_path)

    assert run.code == 0, run.stderr
    assert "3/3 done, 0 failed, 0 waiting" in run.stderr
    assert_downloaded(out, photos)
    rows = await job_rows(pool)
    assert [row["status"] for row in rows] == ["succeeded"] * 3
    assert sorted(line.split("\t")[2] for line in run.stdout.splitlines()) == ["succeeded"] * 3
    batch_id = await pool.fetchval("SELECT id FROM batches")
    assert await counted(pool, "batches") == 1
    assert {row["batch_id"] for row in rows} == {batch_id}
    assert f"batch {batch_id}: 3 photos" in run.stderr
    state = json.loads((out / STATE_FILE).read_text())
    assert set(state["batches"].values()) == {str(batch_id)}
    assert set(state["assets"].values()) == {str(row["asset_id"]) for row in rows}


async def test_a_run_killed_after_its_first_upload_resumes_without_a_second_batch(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [write_photo(folder, f"listing-{seed}.jpg", seed) for seed in range(1, 6)]
    out, env = tmp_path / "enhanced", cli_env(api_only)
    state = out / STATE_FILE

    first = await start_cli(submit_args(photos, out), env, tmp_path)  # no worker yet: nothing finishes under it
    await poll(lambda: _recorded(state), within=60, every=0.005, what=lambda: "the first upload")
    first.send_signal(signal.SIGKILL)
    await first.wait()
    uploaded_before = await counted(pool, "assets")
    start_worker(api_only, service_env, log_dir)
    run = await luster(submit_args(photos, out), env, tmp_path)

    assert first.returncode == -signal.SIGKILL
    assert uploaded_before >= 1
    assert run.code == 0, run.stderr
    rows = await job_rows(pool)
    assert await counted(pool, "batches") == 1  # one batch, however far the first run got
    assert len(rows) == len(photos)  # one job per photo
    assert await counted(pool, "assets") == len(photos)  # and no photo stored twice
    assert {row["status"] for row in rows} == {"succeeded"}
    assert_downloaded(out, photos)


async def test_a_run_killed_once_its_batch_exists_resumes_that_batch(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, photos: list[Path], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    out, env = tmp_path / "enhanced", cli_env(api_only)
    first = await start_cli(submit_args(photos, out), env, tmp_path)  # no worker yet: it waits on queued jobs
    await poll(lambda: _batches_recorded(out / STATE_FILE), within=60, every=0.05, what=lambda: "the batch")
    first.send_signal(signal.SIGKILL)
    await first.wait()
    start_worker(api_only, service_env, log_dir)
    run = await luster(submit_args(photos, out), env, tmp_path)

    assert run.code == 0, run.stderr
    assert await counted(pool, "batches") == 1
    assert await counted(pool, "assets") == len(await job_rows(pool)) == len(photos)
    assert_downloaded(out, photos)


async def test_without_its_state_file_a_rerun_still_gets_the_same_jobs_back(
    stack: Stack, photos: list[Path], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    out, env = tmp_path / "enhanced", cli_env(stack)
    first = await luster(submit_args(photos, out), env, tmp_path)
    assert first.code == 0, first.stderr
    (out / STATE_FILE).unlink()
    for path in out.glob("*.jpg"):
        path.unlink()

    again = await luster(submit_args(photos, out), env, tmp_path)

    assert again.code == 0, again.stderr
    assert len(await job_rows(pool)) == len(photos)
    assert await counted(pool, "batches") == 1  # the same uploads found again, so the same request replayed
    assert await counted(pool, "assets") == len(photos)
    assert sorted(first.stdout.splitlines()) == sorted(again.stdout.splitlines())
    assert_downloaded(out, photos)


async def test_an_asset_the_api_no_longer_has_is_uploaded_again(
    stack: Stack, photos: list[Path], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    out = tmp_path / "enhanced"
    out.mkdir()
    gone = {hashlib.sha256(photos[1].read_bytes()).hexdigest(): str(uuid.uuid4())}  # deleted since, say
    (out / STATE_FILE).write_text(json.dumps({"assets": gone, "batches": {}}))

    run = await luster(submit_args(photos, out), cli_env(stack), tmp_path)

    assert run.code == 0, run.stderr
    assert_downloaded(out, photos)
    assert await counted(pool, "assets") == len(photos)
    assert set(gone.values()).isdisjoint(json.loads((out / STATE_FILE).read_text())["assets"].values())


async def test_status_and_jobs_read_what_submit_created(stack: Stack, photos: list[Path], tmp_path: Path) -> None:
    env = cli_env(stack)
    submitted = await luster(["submit", str(photos[0]), "--style", "bright_airy"], env, tmp_path)
    job_id = submitted.stdout.split("\t")[1]

    status = await luster(["status", job_id, "--wait", "30"], env, tmp_path)
    listed = await luster(["jobs", "--limit", "5"], env, tmp_path)

    assert submitted.code == status.code == listed.code == 0
    assert status.stdout.startswith(f"{job_id}  succeeded  tier=free style=bright_airy")
    assert "output /jobs/" in status.stdout
    assert job_id in listed.stdout


async def test_a_bad_key_and_a_missing_key_are_one_clear_line(stack: Stack, tmp_path: Path) -> None:
    bad = await luster(["jobs"], cli_env(stack, LUSTER_API_KEY="lus_not-a-key"), tmp_path)
    missing = await luster(["jobs"], cli_env(stack, LUSTER_API_KEY=""), tmp_path)
    keys = await luster(["keys"], cli_env(stack), tmp_path)

    assert bad.code == 1
    assert bad.stderr.strip().startswith("luster: 401 unauthenticated:")
    assert "Traceback" not in bad.stderr
    assert missing.code == 2
    assert "LUSTER_API_KEY is not set" in missing.stderr
    assert keys.code == 2
    assert "python -m services.api.apikeys" in keys.stderr


async def _recorded(state: Path) -> int:
    return await asyncio.to_thread(_recorded_now, state)


def _recorded_now(state: Path, part: str = "assets") -> int:
    try:
        return len(json.loads(state.read_text())[part])
    except (FileNotFoundError, json.JSONDecodeError):  # not there yet (it is replaced whole, never half-written)
        return 0


async def _batches_recorded(state: Path) -> int:
    return await asyncio.to_thread(_recorded_now, state, "batches")


async def test_a_failed_job_is_reported_and_makes_the_exit_code_non_zero(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, photos: list[Path], tmp_path: Path
) -> None:
    start_worker(api_only, service_env, log_dir, LUSTER_FAULTS="engine_transient:1.0", MAX_ATTEMPTS="1")

    run = await luster(submit_args(photos[:1], tmp_path / "out"), cli_env(api_only), tmp_path)

    assert run.code == 1
    assert "0/1 done, 1 failed, 0 waiting" in run.stderr
    assert f"{photos[0]}: job " in run.stderr
    assert not list((tmp_path / "out").glob("*.jpg"))


async def test_batches_lists_and_batch_waits_shows_and_zips(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, photos: list[Path], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    env = cli_env(api_only)
    submitted = await luster(["submit", *map(str, photos), "--style", "dusk"], env, tmp_path)
    batch_id = str(await pool.fetchval("SELECT id FROM batches"))
    running = await luster(["batches"], env, tmp_path)
    start_worker(api_only, service_env, log_dir)
    waited = await luster(["batch", batch_id, "--wait", "--zip", str(tmp_path / "out.zip")], env, tmp_path)
    listed = await luster(["batches", "--limit", "5"], env, tmp_path)

    assert submitted.code == running.code == waited.code == listed.code == 0, submitted.stderr + waited.stderr
    assert sorted(line.split("\t")[2] for line in submitted.stdout.splitlines()) == ["queued"] * 3
    assert running.stdout.startswith(f"{batch_id}  running  0/3 done, 0 failed, 3 waiting")
    assert f"batch {batch_id}: 3/3 done, 0 failed, 0 waiting" in waited.stderr
    assert waited.stdout.startswith(f"{batch_id}  completed  3/3 done, 0 failed, 0 waiting  created ")
    assert waited.stdout.count("  succeeded  tier=free style=dusk") == 3
    assert listed.stdout.startswith(f"{batch_id}  completed  3/3 done")
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        names = archive.namelist()
        assert sorted(name.split("-", 1)[1] for name in names) == sorted(photo.name for photo in photos)
        for name in names:
            assert archive.read(name).startswith(b"\xff\xd8")  # a JPEG


async def test_photos_go_straight_to_the_object_store_and_outputs_come_back_from_it(
    s3_stack: Stack, store_door: StoreDoor, photos: list[Path], tmp_path: Path, pool: asyncpg.Pool
) -> None:
    out = tmp_path / "enhanced"

    run = await luster(submit_args(photos, out), cli_env(s3_stack), tmp_path)

    assert run.code == 0, run.stderr
    assert_downloaded(out, photos)
    assert store_door.methods.count("POST") == len(photos)  # each photo once, past the api
    assert store_door.methods.count("GET") == len(photos)  # each output through its presigned link
    assert not any("Authorization" in headers for headers in store_door.seen)
    assert await counted(pool, "assets") == len(photos)
    assert await counted(pool, "batches") == 1
