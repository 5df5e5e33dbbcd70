"""API keys from the admin side: list them (never their tokens), create one (its token shown once), revoke one."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from services.monitor import keys
from shared import apikeys
from shared.apikeys import ApiKey
from shared.errors import InvalidField, MalformedBody, NotFound
from shared.http.params import path_uuid

log = structlog.get_logger()


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    plan: Literal["free", "premium"]
    name: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")
    requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    jobs_in_flight: int | None = Field(default=None, ge=1, le=1_000_000)
    bytes_per_day: int | None = Field(default=None, ge=1024, le=10**15)


def _shown(key: ApiKey) -> dict[str, Any]:
    return to_jsonable_python(asdict(key))  # type: ignore[no-any-return]


async def listing(request: web.Request) -> web.Response:
    owner = request.query.get("owner") or None
    found = await apikeys.list_keys(request.app[keys.POOL], owner=owner)
    return web.json_response({"keys": [_shown(key) for key in found]})


async def _body(request: web.Request) -> KeyCreate:
    try:
        return KeyCreate.model_validate(await request.json())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise MalformedBody("body is not valid JSON") from error
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidField(f"{field}: {first['msg']}" if field else first["msg"], field=field) from error


async def create(request: web.Request) -> web.Response:
    wanted = await _body(request)
    key, token = await apikeys.create_key(request.app[keys.POOL], **wanted.model_dump())
    log.warning("api_key.created", key_id=str(key.id), owner=key.owner, plan=key.plan)
    return web.json_response({"key": _shown(key), "token": token}, status=201)


async def revoke(request: web.Request) -> web.Response:
    key_id = path_uuid(request, "key_id")
    revoked = await apikeys.revoke(request.app[keys.POOL], key_id)
    if revoked is None:
        raise NotFound(f"API key {key_id} does not exist", field="key_id")
    log.warning("api_key.revoked", key_id=str(key_id), owner=revoked.owner)
    return web.json_response({"key": _shown(revoked)})
