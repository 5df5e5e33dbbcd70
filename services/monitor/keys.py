"""Typed application keys: everything the monitor's handlers depend on."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from services.monitor.aggregator import Aggregator
from services.monitor.alerts import AlertEngine
from services.monitor.checker import Checker
from services.monitor.csrf import Sessions
from services.monitor.deadletters import DeadLetterBox
from services.monitor.queues import Queues
from services.monitor.settings import MonitorSettings
from services.monitor.throttle import LoginThrottle
from services.monitor.webhook import Webhook
from services.monitor.workers import WorkerRegistry
from shared import edge

SETTINGS = web.AppKey("settings", MonitorSettings)
AGGREGATOR = web.AppKey("aggregator", Aggregator)
WORKERS = web.AppKey("workers", WorkerRegistry)
ALERTS = web.AppKey("alerts", AlertEngine)
THROTTLE = web.AppKey("throttle", LoginThrottle)
SESSIONS = web.AppKey("sessions", Sessions)

HTTP = web.AppKey("http", aiohttp.ClientSession)
POOL = edge.POOL
BROKER = edge.BROKER
QUEUES = web.AppKey("queues", Queues)
DEAD_LETTERS = web.AppKey("dead_letters", DeadLetterBox)
CHECKER = web.AppKey("checker", Checker)
WEBHOOK = web.AppKey("webhook", Webhook)  # only when ALERT_WEBHOOK_URL is set
METRICS = web.AppKey("metrics", CollectorRegistry)
