"""Refusing abusive prompts before they cost anything: OpenAI's moderation endpoint, when configured.

With `MODERATION=openai` every new job's prompt is checked at submission, before its photo is stored
(a job that names a style may send none: then there is nothing to check); a flagged prompt is a 422
`prompt_refused` naming the categories, and nothing is written. OpenAI does not bill moderation. When
the endpoint does not answer in time the prompt goes through, logged: the image API runs its own safety
system behind ours, and an outage there must not stop every customer.
"""

from __future__ import annotations

from typing import Protocol

import openai
import structlog

from services.api.settings import ApiSettings
from shared.errors import InvalidField
from shared.telemetry.logs import brief

log = structlog.get_logger()


class PromptRefused(InvalidField):
    code = "prompt_refused"


class Moderator(Protocol):
    async def check(self, prompt: str) -> None:
        """Raise PromptRefused when the prompt may not be run."""

    async def aclose(self) -> None: ...


class NoModeration:
    async def check(self, prompt: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


class OpenAIModeration:
    def __init__(self, *, api_key: str, base_url: str | None, model: str, timeout_s: float) -> None:
        self.model = model
        self._client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=1)

    async def check(self, prompt: str) -> None:
        if not prompt:  # a job that names a style may send no words: nothing to refuse, no call to wait for
            return
        try:
            answer = await self._client.moderations.create(model=self.model, input=prompt)
        except openai.OpenAIError as error:
            log.warning("moderation.unavailable", error=brief(error))
            return
        verdict = answer.results[0]
        if verdict.flagged:
            flags = verdict.categories.model_dump(by_alias=True)
            categories = ", ".join(sorted(name for name, hit in flags.items() if hit)) or "unspecified"
            raise PromptRefused(f"the prompt was refused by moderation ({categories})", field="prompt")

    async def aclose(self) -> None:
        await self._client.close()


def moderator_for(settings: ApiSettings) -> Moderator:
    if settings.moderation == "openai" and settings.openai_api_key is not None:
        return OpenAIModeration(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            model=settings.moderation_model,
            timeout_s=settings.moderation_timeout_s,
        )
    return NoModeration()
