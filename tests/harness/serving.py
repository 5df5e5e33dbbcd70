"""A small aiohttp app of a test's own (a fake OpenAI, a webhook receiver) served on a free local port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(app: web.Application, *, handler_cancellation: bool = False) -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its base URL, `http://127.0.0.1:<port>`."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
