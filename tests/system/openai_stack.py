"""An api and a worker process against a local OpenAI-compatible server: what the OpenAI system tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.domain import Tier
from tests.harness.fake_openai import FakeOpenAI, serve_fake_openai
from tests.system import processes
from tests.system.conftest import submit_job, wait_for_status

JOB_DEADLINE_S = 90.0


@dataclass
class Stack:
    api: processes.Service
    worker: processes.Service
    fake: FakeOpenAI
    key: dict[str, str]  # the Authorization header of an API key

    async def submit(self, photo: bytes, prompt: str, tier: Tier = Tier.PREMIUM) -> str:
        return str((await submit_job(self.api.url, photo, self.key, prompt=prompt, tier=tier.value))["id"])

    async def finished(self, job_id: str) -> dict[str, Any]:
        return await wait_for_status(self.api.url, job_id, {"succeeded", "failed"}, JOB_DEADLINE_S, headers=self.key)

    def calls_for(self, prompt: str) -> list[dict[str, Any]]:
        return [call for call in self.fake.calls if prompt in str(call.get("prompt", ""))]


@asynccontextmanager
async def running(
    service_env: dict[str, str], log_dir: Path, api_key: dict[str, str], **worker_env: str
) -> AsyncIterator[Stack]:
    """An api and a worker (with `worker_env` on top of the test's environment) against a fresh fake."""
    async for fake in serve_fake_openai():
        worker = processes.start(
            "worker",
            {
                **service_env,
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": fake.base_url,
                "RETRY_DELAY_SCALE": "0.01",  # the backoff ladder compressed
                **worker_env,
            },
            log_dir,
        )
        api = processes.start("api", service_env, log_dir, port=processes.free_port())
        try:
            await processes.wait_healthy(api, deadline_s=90)
            yield Stack(api, worker, fake, api_key)
        finally:
            for service in (worker, api):
                await asyncio.to_thread(service.stop, 30)
