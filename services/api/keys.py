"""Typed application keys: everything the API's handlers depend on."""

from __future__ import annotations

from aiohttp import web

from services.api.allowance import Allowance
from services.api.caller import Caller
from services.api.settings import ApiSettings
from services.api.uploads import DecodeLimits
from shared import edge
from shared.storage import Store

SETTINGS = web.AppKey("settings", ApiSettings)
POOL = edge.POOL
BROKER = edge.BROKER
UPLOADS = web.AppKey("uploads", Store)
OUTPUTS = web.AppKey("outputs", Store)
DECODES = web.AppKey("decode_limits", DecodeLimits)
# Handlers anyone may call, and the limit each rate-limited handler counts against (set by the routes).
PUBLIC = web.AppKey("public_handlers", frozenset)
LIMITED = web.AppKey("limited_handlers", dict)

CALLER = web.RequestKey("caller", Caller)
ALLOWANCE = web.RequestKey("allowance", Allowance)
