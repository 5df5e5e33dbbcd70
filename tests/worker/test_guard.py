"""The structure guard in the job path, on the real RabbitMQ and PostgreSQL: each policy for an output that
moved the property, and outputs that did not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import pytest

from services.worker.engines import EnhanceRequest, EnhanceResult
from services.worker.engines.local import LocalEngine
from services.worker.settings import WorkerSettings
from shared.events import EventType
from tests.worker import photos
from tests.worker.test_pipeline import consuming

if TYPE_CHECKING:
    from tests.harness.api import JobWaiter, Submitter, Uploader
    from tests.harness.broker import TapFactory

pytestmark = pytest.mark.integration

CALL_COST = Decimal("0.05")
SCENE = photos.house(600, 400, seed=21)
PHOTO = photos.encode(SCENE)
# The same house a little brighter: what a good edit looks like.
RELIT = photos.encode(np.clip(SCENE * 1.15, 0, 1))


def _moved() -> bytes:
    """The house pushed sideways with a new dark window on its wall: a misrepresentation."""
    pixels = np.roll(SCENE, SCENE.shape[1] // 8, axis=1)
    pixels[150:300, 60:200] = (0.12, 0.12, 0.14)
    return photos.encode(pixels)


MOVED = _moved()


class GenerativeStandIn:
    """Answers each call with the next scripted picture, as a generative engine named "openai" would."""

    name = "openai"

    def __init__(self, *outputs: bytes) -> None:
        self.outputs = list(outputs)
        self.calls: list[EnhanceRequest] = []

    async def aclose(self) -> None:
        """Holds nothing."""

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        self.calls.append(request)
        return EnhanceResult(self.outputs.pop(0), "image/jpeg", 600, 400, CALL_COST, self.name)


@pytest.fixture
async def photo_asset(upload: Uploader) -> str:
    return str((await upload(PHOTO))["id"])


async def _flag_in_db(pool: asyncpg.Pool, job_id: str) -> tuple[bool, float | None]:
    row = await pool.fetchrow("SELECT flagged, structure_score FROM jobs WHERE id = $1", uuid.UUID(job_id))
    assert row is not None
    return row["flagged"], row["structure_score"]


async def test_a_moved_output_is_delivered_flagged_when_the_policy_says_deliver(
    photo_asset: str, submit: Submitter, wait_for_job: JobWaiter, worker_settings: WorkerSettings, tap: TapFactory
) -> None:
    job = await submit(photo_asset, tier="premium")
    succeeded = await tap(EventType.JOB_SUCCEEDED.value)
    settings = worker_settings.model_copy(update={"structure_policy": "deliver"})

    async with consuming(settings, GenerativeStandIn(MOVED)):
        done = await wait_for_job(job["id"], within=30)

    assert done["status"] == "succeeded", done
    assert done["flagged"] is True
    assert done["structure_score"] < settings.structure_threshold
    assert (done["engine"], done["fallback_reason"], Decimal(done["cost"])) == ("openai", None, CALL_COST)
    [event] = await succeeded.events()
    assert (event.data["flagged"], event.data["structure_score"]) == (True, done["structure_score"])


async def test_a_moved_output_fails_the_job_flagged_when_the_policy_says_fail(
    photo_asset: str,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    tap: TapFactory,
    pool: asyncpg.Pool,
) -> None:
    job = await submit(photo_asset, tier="premium")
    failed = await tap(EventType.JOB_FAILED.value)
    settings = worker_settings.model_copy(update={"structure_policy": "fail"})
    engine = GenerativeStandIn(MOVED)

    async with consuming(settings, engine):
        done = await wait_for_job(job["id"], within=30)

    assert done["status"] == "failed", done
    assert done["error"]["code"] == "structure_changed"
    assert done["output_url"] is None
    assert (done["flagged"], Decimal(done["cost"]), len(engine.calls)) == (True, CALL_COST, 1)
    flagged, score = await _flag_in_db(pool, job["id"])
    assert flagged and score is not None and score < settings.structure_threshold
    [event] = await failed.events()
    assert (event.data["error_code"], Decimal(event.data["cost"])) == ("structure_changed", CALL_COST)


async def test_retry_asks_again_strictly_and_delivers_the_second_output_when_it_keeps_the_property(
    photo_asset: str, submit: Submitter, wait_for_job: JobWaiter, worker_settings: WorkerSettings
) -> None:
    job = await submit(photo_asset, tier="premium")
    engine = GenerativeStandIn(MOVED, RELIT)

    async with consuming(worker_settings, engine):  # retry is the default policy
        done = await wait_for_job(job["id"], within=30)

    assert done["status"] == "succeeded", done
    assert (done["flagged"], done["attempts"]) == (False, 1)
    assert done["structure_score"] >= worker_settings.structure_threshold
    assert [call.strict for call in engine.calls] == [False, True]
    assert Decimal(done["cost"]) == 2 * CALL_COST  # both calls were billed


async def test_retry_fails_the_job_when_the_strict_output_moves_the_property_too(
    photo_asset: str, submit: Submitter, wait_for_job: JobWaiter, worker_settings: WorkerSettings
) -> None:
    job = await submit(photo_asset, tier="premium")
    engine = GenerativeStandIn(MOVED, MOVED)

    async with consuming(worker_settings, engine):
        done = await wait_for_job(job["id"], within=30)

    assert done["status"] == "failed", done
    assert (done["error"]["code"], done["flagged"], done["attempts"]) == ("structure_changed", True, 1)
    assert Decimal(done["cost"]) == 2 * CALL_COST
    assert len(engine.calls) == 2


@pytest.fixture
def local_engine(worker_settings: WorkerSettings) -> Iterator[LocalEngine]:
    """The real local engine, run in this process."""
    with ThreadPoolExecutor(1) as executor:
        yield LocalEngine(executor, max_pixels=worker_settings.max_image_pixels)


async def test_a_good_edit_passes_and_the_local_engine_is_not_checked_unless_asked(
    photo_asset: str,
    submit: Submitter,
    wait_for_job: JobWaiter,
    worker_settings: WorkerSettings,
    local_engine: LocalEngine,
) -> None:
    generative = await submit(photo_asset, tier="premium")
    async with consuming(worker_settings, GenerativeStandIn(RELIT)):
        done = await wait_for_job(generative["id"], within=30)
    assert (done["status"], done["flagged"]) == ("succeeded", False)
    assert done["structure_score"] >= worker_settings.structure_threshold

    local = await submit(photo_asset, tier="free")
    async with consuming(worker_settings, local_engine):
        done = await wait_for_job(local["id"], within=30)
    assert (done["status"], done["engine"], done["structure_score"], done["flagged"]) == (
        "succeeded",
        "local",
        None,
        False,
    )

    checked = await submit(photo_asset, tier="premium", style="dusk")
    async with consuming(worker_settings.model_copy(update={"structure_guard": "all"}), local_engine):
        done = await wait_for_job(checked["id"], within=30)
    assert (done["status"], done["engine"], done["flagged"]) == ("succeeded", "local", False)
    assert done["structure_score"] >= worker_settings.structure_threshold
