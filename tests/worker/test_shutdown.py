"""What the worker holds is released when it stops."""

from __future__ import annotations

import pytest

from services.worker.engines.openai import OpenAIEngine
from services.worker.engines.routing import BudgetedEngine, TierRouter
from services.worker.runner import worker_context
from services.worker.settings import WorkerSettings
from shared.domain import Tier
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.integration


async def test_the_worker_closes_its_engines_client_on_shutdown(settings_for: SettingsFactory) -> None:
    settings = settings_for(
        WorkerSettings, engine="openai", openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1"
    )
    async with worker_context(settings) as ctx:
        router = ctx.engine
        assert isinstance(router, TierRouter)
        paid = router.engine_for(Tier.PREMIUM)
        assert isinstance(paid, BudgetedEngine)
        engine = paid.engine
        assert isinstance(engine, OpenAIEngine) and not engine.closed

    assert engine.closed
