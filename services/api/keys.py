"""Typed application keys: everything the API's handlers depend on."""

from __future__ import annotations

from aiohttp import web

from services.api.allowance import Allowance
from services.api.caller import Caller
from services.api.keycounter import KeyCounter
from services.api.metrics import ApiMetrics
from services.api.moderation import Moderator
from services.api.openapi import Document
from services.api.settings import ApiSettings
from services.api.spool import MemoryBudget
from services.api.traffic import Traffic
from services.api.uploads import DecodeLimits
from shared.http import resources
from shared.intake import Intake
from shared.jobwatch import JobWatch
from shared.storage import Store

SETTINGS = web.AppKey("settings", ApiSettings)
POOL = resources.POOL
BROKER = resources.BROKER
PUBLISHER = resources.PUBLISHER
UPLOADS = web.AppKey("uploads", Store)
OUTPUTS = web.AppKey("outputs", Store)
DECODES = web.AppKey("decode_limits", DecodeLimits)
UPLOAD_MEMORY = web.AppKey("upload_memory", MemoryBudget)
MODERATOR = web.AppKey("moderator", Moderator)
KEY_COUNTER = web.AppKey("key_counter", KeyCounter)
INTAKE = web.AppKey("intake", Intake)
JOB_WATCH = web.AppKey("job_watch", JobWatch)
# The same kind of watch on batches: what GET /batches/{id}/events streams from (shared/batchwatch.py).
BATCH_WATCH = web.AppKey("batch_watch", JobWatch)
# Built once by create_app from the route table; /openapi.json serves it.
OPENAPI = web.AppKey("openapi", Document)
# The registry /metrics serves, with the request metrics the middleware records.
METRICS = web.AppKey("metrics", ApiMetrics)
TRAFFIC = web.AppKey("traffic", Traffic)
# Handlers anyone may call, and the limit each rate-limited handler counts against (set by the routes).
PUBLIC = web.AppKey("public_handlers", frozenset)
LIMITED = web.AppKey("limited_handlers", dict)

CALLER = web.RequestKey("caller", Caller)
ALLOWANCE = web.RequestKey("allowance", Allowance)
