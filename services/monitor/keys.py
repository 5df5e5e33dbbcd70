"""Typed application keys: everything the monitor's handlers depend on."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from services.monitor.admin.csrf import Sessions
from services.monitor.admin.throttle import LoginThrottle
from services.monitor.aggregation.aggregator import Aggregator
from services.monitor.aggregation.apis import ApiWatch
from services.monitor.aggregation.fleet import WorkerRegistry
from services.monitor.alerting.alerts import AlertEngine
from services.monitor.alerting.checker import Checker
from services.monitor.alerting.webhook import Webhook
from services.monitor.broker.deadletters import DeadLetterBox
from services.monitor.broker.queues import Queues
from services.monitor.settings import MonitorSettings
from shared.http import resources

SETTINGS = web.AppKey("settings", MonitorSettings)
AGGREGATOR = web.AppKey("aggregator", Aggregator)
WORKERS = web.AppKey("workers", WorkerRegistry)
APIS = web.AppKey("apis", ApiWatch)
ALERTS = web.AppKey("alerts", AlertEngine)
THROTTLE = web.AppKey("throttle", LoginThrottle)
SESSIONS = web.AppKey("sessions", Sessions)

HTTP = web.AppKey("http", aiohttp.ClientSession)
POOL = resources.POOL
BROKER = resources.BROKER
PUBLISHER = resources.PUBLISHER
QUEUES = web.AppKey("queues", Queues)
DEAD_LETTERS = web.AppKey("dead_letters", DeadLetterBox)
CHECKER = web.AppKey("checker", Checker)
WEBHOOK = web.AppKey("webhook", Webhook)  # only when ALERT_WEBHOOK_URL is set
METRICS = web.AppKey("metrics", CollectorRegistry)
