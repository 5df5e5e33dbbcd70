"""MODERATION=openai: a flagged prompt is refused before anything is stored; an unreachable endpoint is no outage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from pydantic import SecretStr

from tests.harness.api import ApiFactory, Uploader, job_form, stored_files, table_counts
from tests.harness.serving import serving

pytestmark = pytest.mark.integration

CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence", "violence/graphic")


@dataclass
class FakeModeration:
    """OpenAI's /v1/moderations: flags a prompt that mentions violence, and remembers what it was asked."""

    base_url: str = ""
    calls: list[dict[str, object]] = field(default_factory=list)

    async def moderate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append({"authorization": request.headers.get("Authorization"), **body})
        hits = {name: name.startswith("violence") and "smash" in body["input"] for name in CATEGORIES}
        result = {"flagged": any(hits.values()), "categories": hits, "category_scores": dict.fromkeys(hits, 0.5)}
        return web.json_response({"id": "modr-test", "model": body["model"], "results": [result]})


@pytest.fixture
async def moderation() -> AsyncIterator[FakeModeration]:
    fake = FakeModeration()
    app = web.Application()
    app.router.add_post("/v1/moderations", fake.moderate)
    async with serving(app) as url:
        fake.base_url = f"{url}/v1"
        yield fake


def _moderated(base_url: str) -> dict[str, object]:
    return {"moderation": "openai", "openai_api_key": SecretStr("sk-moderation-test"), "openai_base_url": base_url}


async def test_a_flagged_prompt_is_refused_and_nothing_is_stored(
    api_factory: ApiFactory,
    moderation: FakeModeration,
    pool: asyncpg.Pool,
    storage_dirs: tuple[Path, Path],
    photo: bytes,
) -> None:
    api = await api_factory(**_moderated(moderation.base_url))
    before = await table_counts(pool), stored_files(storage_dirs[0])
    form = job_form({"prompt": "smash the neighbour's windows", "tier": "free"}, file=photo)

    response = await api.post("/jobs", data=form)

    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "prompt_refused" and error["field"] == "prompt"
    assert "violence" in error["message"] and "violence/graphic" in error["message"]
    assert (await table_counts(pool), stored_files(storage_dirs[0])) == before
    assert moderation.calls == [
        {
            "authorization": "Bearer sk-moderation-test",
            "model": "omni-moderation-latest",
            "input": "smash the neighbour's windows",
        }
    ]


async def test_a_clean_prompt_goes_through(
    api_factory: ApiFactory, moderation: FakeModeration, upload: Uploader
) -> None:
    api = await api_factory(**_moderated(moderation.base_url))
    asset = await upload()

    response = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "brighter, warmer light"})

    assert response.status == 202, await response.text()
    assert [call["input"] for call in moderation.calls] == ["brighter, warmer light"]


async def test_an_unreachable_moderation_endpoint_lets_the_job_through(
    api_factory: ApiFactory, upload: Uploader
) -> None:
    """The image API has its own safety system; a moderation outage must not stop every customer."""
    api = await api_factory(**_moderated("http://127.0.0.1:9/v1"), moderation_timeout_s=2.0)
    asset = await upload()

    response = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "smash the gloom: brighter"})

    assert response.status == 202, await response.text()


async def test_without_moderation_nothing_is_asked(
    api_factory: ApiFactory, moderation: FakeModeration, upload: Uploader
) -> None:
    api = await api_factory(openai_base_url=moderation.base_url)
    asset = await upload()

    response = await api.post("/jobs", json={"asset_id": asset["id"], "prompt": "smash the gloom: brighter"})

    assert response.status == 202
    assert moderation.calls == []


async def test_a_job_without_a_prompt_asks_nothing(
    api_factory: ApiFactory, moderation: FakeModeration, upload: Uploader
) -> None:
    api = await api_factory(**_moderated(moderation.base_url))
    asset = await upload()

    response = await api.post("/jobs", json={"asset_id": asset["id"], "style": "dusk"})

    assert response.status == 202, await response.text()
    assert moderation.calls == []
