"""The signing secret of the caller's key: what a receiver verifies this key's webhooks with."""

from __future__ import annotations

from aiohttp import web

from services.api import keys
from services.api.schemas import WebhookSecretEnvelope, WebhookSecretOut
from shared.errors import NotFound
from shared.webhooks import secrets


async def get_secret(request: web.Request) -> web.Response:
    key = request[keys.CALLER].key
    secret = await secrets.signing_secret(request.app[keys.POOL], key.id)
    if secret is None:  # revoked and deleted between authentication and here
        raise NotFound("the key no longer exists", field="Authorization")
    return _respond(WebhookSecretOut(key_id=key.id, secret=secret))


async def rotate_secret(request: web.Request) -> web.Response:
    key = request[keys.CALLER].key
    secret = await secrets.rotate(request.app[keys.POOL], key.id)
    return _respond(WebhookSecretOut(key_id=key.id, secret=secret))


def _respond(secret: WebhookSecretOut) -> web.Response:
    # A secret: no cache along the way may keep it.
    body = WebhookSecretEnvelope(webhook_secret=secret).model_dump_json()
    return web.json_response(text=body, headers={"Cache-Control": "no-store"})
