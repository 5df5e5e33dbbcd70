"""Turning request bodies (JSON or multipart) into validated models, with errors that name the field.

Every body is read within the instance's limits (settings): a JSON cap, a number of form parts, a byte
budget, and one deadline for the whole body. Bodies arrive as sent: aiohttp's decompression is off
(app.py), and a Content-Encoding is refused rather than inflated.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from services.api import keys
from services.api.spool import MemoryBudget
from services.api.uploads import Upload, read_file_part
from shared.errors import InvalidField, MalformedBody, PayloadTooLarge, UnsupportedMediaType

ModelT = TypeVar("ModelT", bound=BaseModel)
T = TypeVar("T")
MAX_FIELD_BYTES = 16 * 1024
# All text fields of one form together (a job form needs well under 2 KiB).
MAX_FORM_FIELDS_BYTES = 64 * 1024
# Integers longer than this are no id, count or size of ours; int() of a huge one costs quadratic time.
MAX_INT_DIGITS = 18
JSON_CHUNK_BYTES = 16 * 1024
# How a body that stops half-way shows up: a reset connection, or aiohttp's parser on broken framing.
_CUT_SHORT = (ConnectionResetError, RequestPayloadError, HttpProcessingError)


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
    # Every file part, in order; a form that takes one keeps only the last (as the last field wins).
    files: list[Upload]

    @property
    def file(self) -> Upload | None:
        return self.files[-1] if self.files else None

    def close(self) -> None:
        for upload in self.files:
            upload.close()


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, read within MAX_JSON_BYTES and parsed with numbers kept in bounds."""
    settings = request.app[keys.SETTINGS]
    _refuse_encoded(request)
    limit = settings.max_json_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    raw = _arrived(request, limit)
    if raw is None:
        raw = await _in_time(request, _read_capped(request, limit))
    try:
        body = json.loads(
            raw.decode(request.charset or "utf-8"),
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except (ValueError, LookupError) as error:  # JSONDecodeError, UnicodeDecodeError, our number checks, charsets
        raise MalformedBody(f"body is not valid JSON: {error}") from error
    except RecursionError as error:  # json.loads recurses once per nesting level
        raise MalformedBody("body is nested too deeply") from error
    if not isinstance(body, dict):
        raise MalformedBody("body must be a JSON object")
    return body


def _arrived(request: web.Request, limit: int) -> bytes | None:
    """The whole body, when it came in with the head (a small JSON body nearly always does): nothing is left
    to wait for, so no deadline and no chunked reading. None while any of it is still on its way."""
    content = request.content
    if not content.is_eof() or content.exception() is not None:
        return None
    body = content.read_nowait()
    if len(body) > limit:  # chunked: no Content-Length said so up front
        raise _too_large(limit)
    return body


async def _read_capped(request: web.Request, limit: int) -> bytes:
    body = bytearray()
    try:
        async for chunk in request.content.iter_chunked(JSON_CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except _CUT_SHORT as error:
        raise MalformedBody("the body ended before it was complete") from error
    return bytes(body)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"a JSON body may be at most {limit} bytes")


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


def _refuse_encoded(request: web.Request) -> None:
    """A compressed body could inflate far past every cap: refuse it before reading a byte."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # 415 is the status for a content coding we do not take (RFC 9110 15.5.16).
        raise UnsupportedMediaType(
            "send the body without Content-Encoding", field="Content-Encoding", code="unsupported_content_encoding"
        )


async def _in_time(request: web.Request, reading: Awaitable[T]) -> T:
    """`reading` within BODY_READ_TIMEOUT_S, or a 408: a client that trickles its body holds a slot meanwhile."""
    timeout_s = request.app[keys.SETTINGS].body_read_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await reading
    except TimeoutError as error:
        raise web.HTTPRequestTimeout() from error


async def read_form(
    request: web.Request,
    *,
    max_file_bytes: int,
    file_field: str = "file",
    max_files: int = 1,
    max_total_file_bytes: int | None = None,
) -> FormBody:
    """Read a multipart form; its file parts (one, or up to `max_files`) are streamed with byte caps: each
    within `max_file_bytes`, all within `max_total_file_bytes`."""
    _refuse_encoded(request)
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as error:
        raise MalformedBody("body is not a valid multipart form") from error
    parts = request.app[keys.SETTINGS].max_form_parts + max_files - 1
    total = max_total_file_bytes if max_total_file_bytes is not None else max_file_bytes
    limits = _FormLimits(parts, total, file_field, max_file_bytes, max_files)
    memory, threads = request.app[keys.UPLOAD_MEMORY], request.app[keys.DECODES].threads
    try:
        return await _in_time(request, _read_parts(reader, limits, memory, threads))
    except (ValueError, *_CUT_SHORT) as error:  # aiohttp's parser on a body cut short or mangled
        raise MalformedBody("body is not a valid multipart form") from error


@dataclass
class _FormLimits:
    """What one form may still hold; the byte budgets shrink as parts arrive."""

    parts: int
    file_bytes: int
    file_field: str
    per_file_bytes: int
    max_files: int
    field_bytes: int = MAX_FORM_FIELDS_BYTES

    def count_part(self) -> None:
        self.parts -= 1
        if self.parts < 0:
            raise PayloadTooLarge("the form has too many parts", code="too_many_parts")


async def _read_parts(
    reader: MultipartReader, limits: _FormLimits, memory: MemoryBudget, threads: Executor
) -> FormBody:
    form = FormBody({}, [])
    try:
        while (part := await reader.next()) is not None:
            limits.count_part()
            if not isinstance(part, BodyPartReader) or not part.name:
                raise MalformedBody("nested or unnamed multipart parts are not accepted")
            if part.name == limits.file_field and part.filename is not None:
                if len(form.files) == limits.max_files == 1:
                    form.files.pop().close()  # the last file part wins, as the last field does
                elif len(form.files) == limits.max_files:
                    raise PayloadTooLarge(f"at most {limits.max_files} files in one form", code="too_many_files")
                # Every file part draws on one budget too: many files are as large as the form allows.
                budget = min(limits.per_file_bytes, limits.file_bytes)
                upload = await read_file_part(part, max_bytes=budget, memory=memory, threads=threads)
                form.files.append(upload)
                limits.file_bytes -= upload.size
            else:
                form.fields[part.name] = await _read_field(part, limits)
    except BaseException:
        form.close()
        raise
    return form


async def _read_field(part: BodyPartReader, limits: _FormLimits) -> str:
    raw = b""
    while chunk := await part.read_chunk(MAX_FIELD_BYTES):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise InvalidField(f"{part.name} is too long", field=part.name)
    limits.field_bytes -= len(raw)
    if limits.field_bytes < 0:
        raise PayloadTooLarge("the form's fields are too large together", code="form_too_large")
    try:
        return raw.decode(part.get_charset(default="utf-8"))
    except (UnicodeDecodeError, LookupError) as error:
        raise InvalidField(f"{part.name} is not valid text", field=part.name) from error
