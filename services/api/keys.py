"""Typed application keys: everything the API's handlers depend on."""

from __future__ import annotations

from aiohttp import web

from services.api.settings import ApiSettings
from shared import edge
from shared.storage import Store

SETTINGS = web.AppKey("settings", ApiSettings)
POOL = edge.POOL
BROKER = edge.BROKER
UPLOADS = web.AppKey("uploads", Store)
OUTPUTS = web.AppKey("outputs", Store)
