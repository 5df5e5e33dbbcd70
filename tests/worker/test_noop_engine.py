"""The no-op engine: the photo back as a JPEG, pixel for pixel, at no cost; never in production."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from services.worker.engines import EnhanceRequest
from services.worker.engines.noop import NoopEngine
from services.worker.settings import WorkerSettings
from shared.domain import Style, Tier
from shared.errors import PermanentEngineError
from tests.worker import photos

ROOT = Path(__file__).resolve().parents[2]


def _request(image: bytes) -> EnhanceRequest:
    return EnhanceRequest(image=image, prompt="", tier=Tier.FREE, style=Style.DEFAULT)


async def test_the_photo_comes_back_re_encoded_as_a_jpeg_at_no_cost() -> None:
    result = await NoopEngine().enhance(_request(photos.encode(photos.house(64, 48), "PNG")))

    decoded = Image.open(io.BytesIO(result.image))
    assert (decoded.format, decoded.size, (result.width, result.height)) == ("JPEG", (64, 48), (64, 48))
    assert (result.content_type, result.cost, result.engine) == ("image/jpeg", Decimal("0"), "noop")


async def test_bytes_that_are_no_image_fail_permanently() -> None:
    with pytest.raises(PermanentEngineError):
        await NoopEngine().enhance(_request(b"not a photo"))


@pytest.mark.parametrize("variable", ["ENGINE", "ENGINE_FREE", "ENGINE_PREMIUM"])
def test_production_refuses_the_no_op_engine_naming_the_setting(variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"ENVIRONMENT": "production", "ALLOW_LOCAL_STORAGE": "true", variable: "noop"}.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match=f"{variable}=noop in production"):
        WorkerSettings()


def test_the_worker_refuses_to_start_on_it_in_production_in_one_line() -> None:
    env = {"ENVIRONMENT": "production", "ALLOW_LOCAL_STORAGE": "true", "ENGINE": "noop", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "services.worker"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "luster: invalid configuration: ENGINE=noop in production: the no-op engine enhances nothing "
        "(benchmarks and tests only)"
    )
