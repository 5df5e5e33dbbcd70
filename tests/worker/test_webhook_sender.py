"""One webhook attempt: signed so a Standard Webhooks library verifies it, never sent to a private
address unless allowed (checked at connect time too), and every answer classified."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer
from standardwebhooks import Webhook

from services.worker.webhooks.sender import AttemptOutcome, WebhookSender
from shared.apikeys import new_webhook_secret
from shared.events import WebhookDelivery


def _delivery(url: str) -> WebhookDelivery:
    body = '{"type":"job.succeeded","timestamp":"2026-12-03T12:00:00+00:00","data":{"id":"x"}}'
    return WebhookDelivery(webhook_id="msg_1", event="job.succeeded", url=url, body=body, api_key_id=uuid.uuid4())


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> tuple[str, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        received.append({"headers": dict(request.headers), "body": await request.text()})
        behaviour = request.match_info["behaviour"]
        if behaviour == "slow":
            await asyncio.sleep(5)
        if behaviour == "moved":
            raise web.HTTPFound("/ok")
        return web.Response(status={"gone": 410, "broken": 503}.get(behaviour, 204))

    app = web.Application()
    app.router.add_post("/{behaviour}", answer)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}", received


async def test_a_delivery_verifies_with_the_standard_webhooks_library(receiver: tuple[str, list[Any]]) -> None:
    url, received = receiver
    secret = new_webhook_secret()
    sender = WebhookSender(timeout_s=2, allow_private=True)
    try:
        attempt = await sender.send(_delivery(f"{url}/ok"), secret)
    finally:
        await sender.close()
    assert (attempt.outcome, attempt.response_status) == (AttemptOutcome.DELIVERED, 204)
    [request] = received
    assert Webhook(secret).verify(request["body"], request["headers"])["data"] == {"id": "x"}
    assert request["headers"]["webhook-id"] == "msg_1"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(new_webhook_secret()).verify(request["body"], request["headers"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_a_private_address_is_never_called_unless_allowed(receiver: tuple[str, list[Any]], host: str) -> None:
    url, received = receiver
    port = url.rsplit(":", 1)[1]
    sender = WebhookSender(timeout_s=2, allow_private=False)
    try:
        attempt = await sender.send(_delivery(f"http://{host}:{port}/ok"), new_webhook_secret())
    finally:
        await sender.close()
    assert attempt.outcome is AttemptOutcome.REFUSED
    assert attempt.error is not None and "not a public address" in attempt.error
    assert received == []


@pytest.mark.parametrize(
    ("behaviour", "outcome", "status"),
    [
        ("gone", AttemptOutcome.GONE, 410),
        ("broken", AttemptOutcome.FAILED, 503),
        (
            "moved",
            AttemptOutcome.FAILED,
            302,
        ),  # redirects are not followed: the target was checked, not where it points
        ("slow", AttemptOutcome.FAILED, None),
    ],
)
async def test_every_other_answer_is_classified(
    receiver: tuple[str, list[Any]], behaviour: str, outcome: AttemptOutcome, status: int | None
) -> None:
    url, received = receiver
    sender = WebhookSender(timeout_s=0.5, allow_private=True)
    try:
        attempt = await sender.send(_delivery(f"{url}/{behaviour}"), new_webhook_secret())
    finally:
        await sender.close()
    assert (attempt.outcome, attempt.response_status) == (outcome, status)
    assert len(received) == 1
    if status is None:
        assert attempt.error == "TimeoutError"
