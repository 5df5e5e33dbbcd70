"""`luster` end to end against a real api and worker: submit and download, an interrupted run resumed."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import asyncpg
import pytest
from PIL import Image

from luster_client.state import STATE_FILE
from tests.client.conftest import Stack, cli_env, luster, start_cli, start_worker, write_photo
from tests.harness.poll import poll

pytestmark = pytest.mark.integration


def submit_args(photos: list[Path], out: Path) -> list[str]:
    return ["submit", *map(str, photos), "--tier", "premium", "--style", "dusk", "--wait", "--out", str(out)]


async def job_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT id, asset_id, status FROM jobs"))


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
    assert set(json.loads((out / STATE_FILE).read_text())["jobs"].values()) == {str(row["id"]) for row in rows}


async def test_a_run_killed_after_its_first_submission_resumes_without_submitting_twice(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [write_photo(folder, f"listing-{seed}.jpg", seed) for seed in range(1, 6)]
    out, env = tmp_path / "enhanced", cli_env(api_only)
    state = out / STATE_FILE

    first = await start_cli(submit_args(photos, out), env, tmp_path)  # no worker yet: nothing finishes under it
    await poll(lambda: _recorded(state), within=60, every=0.005, what=lambda: "the first submission")
    first.send_signal(signal.SIGKILL)
    await first.wait()
    submitted_before = len(await job_rows(pool))
    start_worker(api_only, service_env, log_dir)
    run = await luster(submit_args(photos, out), env, tmp_path)

    assert first.returncode == -signal.SIGKILL
    assert 1 <= submitted_before < len(photos)  # killed part-way: the rerun has some left to submit
    assert run.code == 0, run.stderr
    rows = await job_rows(pool)
    assert len(rows) == len(photos)  # one job per photo, however far the first run got
    assert await pool.fetchval("SELECT count(*) FROM assets") == len(photos)  # and no photo stored twice
    assert {row["status"] for row in rows} == {"succeeded"}
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
    assert sorted(first.stdout.splitlines()) == sorted(again.stdout.splitlines())
    assert_downloaded(out, photos)


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


def _recorded_now(state: Path) -> int:
    try:
        return len(json.loads(state.read_text())["jobs"])
    except (FileNotFoundError, json.JSONDecodeError):  # not there yet (it is replaced whole, never half-written)
        return 0


async def test_a_failed_job_is_reported_and_makes_the_exit_code_non_zero(
    api_only: Stack, service_env: dict[str, str], log_dir: Path, photos: list[Path], tmp_path: Path
) -> None:
    start_worker(api_only, service_env, log_dir, LUSTER_FAULTS="engine_transient:1.0", MAX_ATTEMPTS="1")

    run = await luster(submit_args(photos[:1], tmp_path / "out"), cli_env(api_only), tmp_path)

    assert run.code == 1
    assert "0/1 done, 1 failed, 0 waiting" in run.stderr
    assert f"{photos[0]}: job " in run.stderr
    assert not list((tmp_path / "out").glob("*.jpg"))
