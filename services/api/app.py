"""The API application factory, shared by `__main__` and the tests."""

from __future__ import annotations

import re

from aiohttp import web

from services.api import auth, faults, keys, limits, openapi, resources
from services.api.heartbeat import heartbeat
from services.api.metrics import ApiMetrics, measuring
from services.api.routes import ENDPOINTS, setup_routes
from services.api.settings import ApiSettings
from services.api.spool import MemoryBudget
from services.api.traffic import Traffic
from shared.http import access, guards, json_errors, protocol
from shared.http.resources import broker, database, publisher
from shared.telemetry.tracing import server_middlewares

# Room for the largest upload plus the form's other fields; uploads are capped while streamed.
FORM_OVERHEAD_BYTES = 64 * 1024
# Headers the api stores, and what each may hold: an Idempotency-Key is kept and compared as sent.
HEADER_RULES = {"Idempotency-Key": re.compile(r"[\x21-\x7e]{1,255}")}


def create_app(settings: ApiSettings) -> web.Application:
    protocol.answer_protocol_errors_in_json()
    metrics, traffic = ApiMetrics.create(settings.app_version), Traffic()
    app = web.Application(
        # Errors wrap authentication and limits, so their refusals are JSON like any other; requests are
        # measured outside the errors, so each is counted with the status it was answered with.
        middlewares=[
            *server_middlewares(trust_incoming=settings.trusts_incoming_trace),
            measuring(metrics, traffic),
            *filter(None, [faults.hook(settings.environment)]),  # tests only: LUSTER_API_FAULTS
            access.access_log,
            guards.clean_path,  # before anything reads the path: a control character in it is a 400
            json_errors.errors,
            # A stranger hears 401 and nothing about the rest of its request (headers, body, limits).
            auth.authenticate,
            guards.valid_headers(HEADER_RULES),
            limits.limit,
        ],
        client_max_size=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        # Bodies arrive as sent: a compressed one is refused (bodies.py), never inflated past the caps.
        handler_args={**protocol.PARSER_LIMITS, "auto_decompress": False},
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app[keys.TRAFFIC] = traffic
    app[keys.UPLOAD_MEMORY] = MemoryBudget(settings.upload_memory_bytes)
    app[keys.OPENAPI] = openapi.document(ENDPOINTS, version=settings.app_version)
    app.cleanup_ctx.extend(
        [
            resources.storage,
            resources.image_checks,
            database(settings),
            broker(settings, name="luster-api"),
            publisher,
            resources.key_counter,
            resources.intake,
            heartbeat,
            resources.outbox_relay,
            resources.moderation,
            resources.job_watch,
            resources.batch_watch,
        ]
    )
    app.on_shutdown.append(resources.end_streams)
    setup_routes(app)
    return app
