"""The README's webhook receiver, run as it is printed: it takes what Luster's workers sign, refuses a forged
or altered delivery, and handles a message once however often it arrives."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from services.worker.webhooks.sender import AttemptOutcome, WebhookSender, signed_headers
from shared.apikeys import new_webhook_secret
from shared.events import WebhookDelivery
from tests.harness.poll import poll
from tests.system.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^<!-- receiver\.py -->\n```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
BODY = json.dumps({"type": "job.succeeded", "timestamp": "2026-12-03T12:00:00+00:00", "data": {"id": "j1"}})


def readme_receiver() -> str:
    found = BLOCK.search((ROOT / "README.md").read_text())
    assert found, "README.md has no <!-- receiver.py --> block"
    return found["code"]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """The README's receiver as a process of its own: its URL, its secret, and where its output goes."""
    script, output = tmp_path / "receiver.py", tmp_path / "receiver.out"
    script.write_text(readme_receiver())
    secret, port = new_webhook_secret(), free_port()
    env = {**os.environ, "LUSTER_WEBHOOK_SECRET": secret, "PORT": str(port)}
    with output.open("wb") as out:
        process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}/luster", secret, output
    finally:
        process.terminate()
        process.wait(10)


def delivery(url: str, webhook_id: str) -> WebhookDelivery:
    return WebhookDelivery(webhook_id=webhook_id, event="job.succeeded", url=url, body=BODY, api_key_id=uuid.uuid4())


async def test_the_readmes_receiver_verifies_and_deduplicates(receiver: tuple[str, str, Path]) -> None:
    url, secret, output = receiver
    sender = WebhookSender(timeout_s=5, allow_private=True)

    async def listening() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.post(url, data=b"{}") as response:
                return response.status == 401  # up, and unsigned is refused
        except aiohttp.ClientError:
            return False

    try:
        await poll(listening, within=30, what="the README's receiver to listen")
        first = delivery(url, "msg_first")
        assert (await sender.send(first, secret)).outcome is AttemptOutcome.DELIVERED
        assert (await sender.send(first, secret)).outcome is AttemptOutcome.DELIVERED  # a retry: taken, not redone
        forged = await sender.send(delivery(url, "msg_forged"), new_webhook_secret())
        assert (forged.outcome, forged.response_status) == (AttemptOutcome.FAILED, 401)
        headers = signed_headers(delivery(url, "msg_altered"), secret, datetime.now(UTC))
        async with aiohttp.ClientSession() as session:
            altered = await session.post(url, data=BODY.replace("j1", "j2").encode(), headers=headers)
        assert altered.status == 401
    finally:
        await sender.close()

    async def printed() -> list[str] | None:
        lines = output.read_text().splitlines()
        return lines or None

    assert await poll(printed, within=10, what="the receiver's output") == ["job.succeeded j1 None None"]
