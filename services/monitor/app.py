"""The monitor application factory, shared by `__main__` and the tests."""

from __future__ import annotations

from aiohttp import web

from services.monitor import keys, middlewares, resources
from services.monitor.admin import auth
from services.monitor.admin.csrf import Sessions
from services.monitor.admin.throttle import LoginThrottle
from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.apis import ApiWatch
from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.alerting.alerts import AlertEngine
from services.monitor.alerting.rules import build_rules
from services.monitor.routes import setup_routes
from services.monitor.settings import MonitorSettings
from shared.http import access, guards, json_errors
from shared.http.resources import broker, database, publisher
from shared.telemetry.tracing import server_middlewares


def create_app(settings: MonitorSettings) -> web.Application:
    app = web.Application(
        middlewares=[
            *server_middlewares(trust_incoming=settings.trusts_incoming_trace),
            access.access_log,
            middlewares.security_headers,
            guards.clean_path,  # before the admin guard: a control character in the path is a 400
            json_errors.errors,
            auth.admin_only,
        ],
        client_max_size=64 * 1024,  # the monitor takes no uploads; its largest body is a small form
    )
    app[keys.SETTINGS] = settings
    # The pure state: no I/O to set up, so it exists before (and outlives) the resources below.
    app[keys.AGGREGATOR] = Aggregator()
    app[keys.WORKERS] = WorkerRegistry(settings.heartbeat_stale_factor)
    app[keys.APIS] = ApiWatch.create(settings.heartbeat_stale_factor)
    app[keys.ALERTS] = AlertEngine(build_rules(settings), history_size=settings.alert_history_size)
    app[keys.THROTTLE] = LoginThrottle(
        per_client=settings.auth_max_failures,
        per_user=settings.auth_max_user_failures,
        window_s=settings.auth_lockout_seconds,
    )
    app[keys.SESSIONS] = Sessions(settings.admin_session_seconds)
    app.cleanup_ctx.extend(
        [
            resources.http_client,
            database(settings),
            broker(settings, name="luster-monitor"),
            publisher,
            resources.events,
            resources.checks,
        ]
    )
    setup_routes(app)
    return app
