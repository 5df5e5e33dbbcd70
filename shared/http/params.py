"""Path parameters as the types they name, or a 422 naming the parameter."""

from __future__ import annotations

import uuid

from aiohttp import web

from shared.errors import InvalidField


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """The `{name}` segment of the path as a UUID (`job_id` reads as "job id is not a UUID")."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as error:
        raise InvalidField(f"{name.replace('_', ' ')} is not a UUID", field=name) from error
