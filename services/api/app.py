"""The API application factory, shared by `__main__` and the tests."""

from __future__ import annotations

from aiohttp import web

from services.api import keys, resources
from services.api.routes import setup_routes
from services.api.settings import ApiSettings
from shared import edge
from shared.tracing import server_middleware

# Room for the largest upload plus the form's other fields; uploads are capped while streamed.
FORM_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: ApiSettings) -> web.Application:
    app = web.Application(
        middlewares=[server_middleware(), edge.access_log, edge.errors],
        client_max_size=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
    )
    app[keys.SETTINGS] = settings
    app.cleanup_ctx.extend(
        [resources.storage, edge.database(settings), edge.broker(settings, name="luster-api"), resources.outbox_relay]
    )
    setup_routes(app)
    return app
