"""Queues and dead letters: depths and consumers, a look at the dead, and the operator's three actions."""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic_core import to_jsonable_python

from services.monitor import keys
from services.monitor.broker.queues import work_depth

log = structlog.get_logger()


async def listing(request: web.Request) -> web.Response:
    """Read live from the broker (not the last check): an operator about to act wants the current state."""
    stats = await request.app[keys.QUEUES].inspect()
    page = await request.app[keys.DEAD_LETTERS].peek()
    body = {
        "source": request.app[keys.QUEUES].source,
        "depth": work_depth(stats),
        "queues": stats,
        "dead_letters": {
            "total": page.total,
            "shown": len(page.messages),
            "peek_limit": request.app[keys.SETTINGS].dead_letter_peek_limit,
            "messages": page.messages,
        },
    }
    return web.json_response(to_jsonable_python(body))


async def requeue_one(request: web.Request) -> web.Response:
    letter = await request.app[keys.DEAD_LETTERS].requeue(request.match_info["key"])
    log.warning("dead_letter.requeued", key=letter.key, queue=letter.origin)
    return web.json_response(to_jsonable_python({"requeued": letter}))


async def requeue_all(request: web.Request) -> web.Response:
    result = await request.app[keys.DEAD_LETTERS].requeue_all()
    log.warning("dead_letter.requeued_all", requeued=result.requeued, kept=result.kept)
    return web.json_response(to_jsonable_python(result))


async def purge(request: web.Request) -> web.Response:
    purged = await request.app[keys.DEAD_LETTERS].purge()
    log.warning("dead_letter.purged", purged=purged)
    return web.json_response({"purged": purged})
