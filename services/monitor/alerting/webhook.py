"""Posting alert transitions to a Slack-compatible webhook, each once, in order, off the check's path."""

from __future__ import annotations

import asyncio

import aiohttp
import structlog

from services.monitor.alerting.alerts import Transition

log = structlog.get_logger()
QUEUE_SIZE = 1000
ATTEMPTS = 3


def text_of(transition: Transition, environment: str) -> str:
    if transition.state == "firing":
        icon, verb = (":red_circle:" if transition.severity == "critical" else ":warning:"), "FIRING"
    else:
        icon, verb = ":white_check_mark:", "RESOLVED"
    lasted = ""
    if transition.state == "resolved":
        minutes = (transition.at - transition.since).total_seconds() / 60
        lasted = f" (after {minutes:.1f} min)"
    return f"{icon} [luster {environment}] {verb} {transition.rule}: {transition.summary}{lasted}"


class Webhook:
    """A slow or failing receiver delays only its own queue; after ATTEMPTS tries a post is dropped and logged."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, environment: str, timeout: float) -> None:
        self.session = session
        self.url = url
        self.environment = environment
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._queue: asyncio.Queue[Transition] = asyncio.Queue(QUEUE_SIZE)
        self.posted = 0

    def submit(self, transition: Transition) -> None:
        try:
            self._queue.put_nowait(transition)
        except asyncio.QueueFull:
            log.error("webhook.dropped", alert=transition.key, state=transition.state, reason="queue full")

    async def run(self) -> None:
        while True:
            transition = await self._queue.get()
            await self._post(transition)
            self._queue.task_done()

    async def drain(self) -> None:
        await self._queue.join()

    async def _post(self, transition: Transition) -> None:
        body = {"text": text_of(transition, self.environment)}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.session.post(self.url, json=body, timeout=self.timeout) as response:
                    response.raise_for_status()
                self.posted += 1
                return
            except (aiohttp.ClientError, TimeoutError) as error:
                log.warning("webhook.failed", alert=transition.key, attempt=attempt, error=repr(error))
                if attempt < ATTEMPTS:
                    await asyncio.sleep(min(2.0**attempt, 30.0))
        log.error("webhook.dropped", alert=transition.key, state=transition.state, reason="receiver kept failing")
