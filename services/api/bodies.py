"""Turning request bodies (JSON or multipart) into validated models, with errors that name the field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from services.api.uploads import Upload, read_file_part
from shared.errors import InvalidField, MalformedBody

ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_FIELD_BYTES = 16 * 1024


def parse_model(model: type[ModelT], data: Any) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        message = f"{field}: {first['msg']}" if field else first["msg"]
        raise InvalidField(message, field=field) from error


@dataclass(frozen=True)
class FormBody:
    fields: dict[str, str]
    file: Upload | None


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, LookupError) as error:  # LookupError: unknown charset
        raise MalformedBody(f"body is not valid JSON: {error}") from error
    except RecursionError as error:  # json.loads recurses once per nesting level
        raise MalformedBody("body is nested too deeply") from error
    if not isinstance(body, dict):
        raise MalformedBody("body must be a JSON object")
    return body


async def read_form(request: web.Request, *, max_file_bytes: int, file_field: str = "file") -> FormBody:
    """Read a multipart form; the one file part is streamed with a byte cap."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as error:
        raise MalformedBody("body is not a valid multipart form") from error
    try:
        return await _read_parts(reader, max_file_bytes=max_file_bytes, file_field=file_field)
    except (ValueError, HttpProcessingError) as error:  # aiohttp's parser on a body cut short or mangled
        raise MalformedBody("body is not a valid multipart form") from error


async def _read_parts(reader: MultipartReader, *, max_file_bytes: int, file_field: str) -> FormBody:
    fields: dict[str, str] = {}
    upload: Upload | None = None
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                raise MalformedBody("nested or unnamed multipart parts are not accepted")
            if part.name == file_field and part.filename is not None:
                if upload is not None:
                    upload.close()  # the last file part wins, as the last field does
                upload = await read_file_part(part, max_bytes=max_file_bytes)
            else:
                fields[part.name] = await _read_field(part)
    except BaseException:
        if upload is not None:
            upload.close()
        raise
    return FormBody(fields, upload)


async def _read_field(part: BodyPartReader) -> str:
    raw = b""
    while chunk := await part.read_chunk(MAX_FIELD_BYTES):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise InvalidField(f"{part.name} is too long", field=part.name)
    try:
        return raw.decode(part.get_charset(default="utf-8"))
    except (UnicodeDecodeError, LookupError) as error:
        raise InvalidField(f"{part.name} is not valid text", field=part.name) from error
