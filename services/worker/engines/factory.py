"""Choosing the engine the settings ask for."""

from __future__ import annotations

from concurrent.futures import Executor

from services.worker.engines import Engine
from services.worker.engines.faulty import FaultyEngine
from services.worker.engines.local import LocalEngine
from services.worker.faults import Faults
from services.worker.settings import WorkerSettings


def create_engine(settings: WorkerSettings, executor: Executor, faults: Faults) -> Engine:
    engine = _configured_engine(settings, executor)
    # Test-only: the fault-injection suite wraps the engine; production never sets LUSTER_FAULTS.
    return FaultyEngine(engine, faults) if faults.engine_faults else engine


def _configured_engine(settings: WorkerSettings, executor: Executor) -> Engine:
    if settings.engine == "openai":
        from services.worker.engines.openai import OpenAIEngine

        return OpenAIEngine(
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else "",
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            timeout=settings.job_timeout,
        )
    return LocalEngine(executor, max_pixels=settings.max_image_pixels)
