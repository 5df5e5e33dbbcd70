"""Typed application keys: everything the API's handlers depend on."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from services.api.settings import ApiSettings
from shared.broker import Broker
from shared.storage import LocalStorage

SETTINGS = web.AppKey("settings", ApiSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
BROKER = web.AppKey("broker", Broker)
UPLOADS = web.AppKey("uploads", LocalStorage)
OUTPUTS = web.AppKey("outputs", LocalStorage)
