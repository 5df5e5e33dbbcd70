"""Files the api serves from its disk (the docs page, outputs on local storage).

aiohttp's FileResponse answers a Range it cannot satisfy with an empty 416 of its own, decided while
the response is sent, past the error middleware. The same rules are checked first here, so that answer
is the JSON error shape every other refusal has, with the `Content-Range` the RFC asks for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from aiohttp import hdrs, web

from shared.errors import RangeNotSatisfiable


async def file_response(
    request: web.Request, path: Path, content_type: str, headers: Mapping[str, str] | None = None
) -> web.FileResponse:
    if hdrs.RANGE in request.headers:
        size = (await asyncio.to_thread(path.stat)).st_size
        _require_satisfiable(request, size)
    return web.FileResponse(path, headers={**(headers or {}), "Content-Type": content_type})


def _require_satisfiable(request: web.Request, size: int) -> None:
    try:
        wanted = request.http_range
    except ValueError:
        raise RangeNotSatisfiable(size, "the Range header is not one byte range this server reads") from None
    start = wanted.start
    # A suffix (`bytes=-N`) is always satisfiable: it is cut to the whole file.
    if start is not None and start >= 0 and start >= size:
        raise RangeNotSatisfiable(size, f"the range starts at byte {start}; the file has {size}")
