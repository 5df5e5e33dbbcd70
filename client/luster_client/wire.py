"""What travels over the wire: request bodies built, answers read, files written whole."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import aiohttp
from multidict import CIMultiDictProxy
from pydantic import BaseModel, ValidationError

from luster_client.errors import ApiError
from luster_client.models import ErrorBody

MAX_WAIT_S = 60  # the most `Prefer: wait=N` the API accepts
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
CHUNK_BYTES = 256 * 1024
Photo = str | os.PathLike[str] | bytes
ModelT = TypeVar("ModelT", bound=BaseModel)
Body = Callable[[], dict[str, Any]]  # the request's keyword arguments, built afresh for each attempt
Sink = Callable[[aiohttp.ClientResponse], Awaitable[None]]  # takes a successful answer's body as it streams


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(frozen=True)
class Output:
    """An enhanced image as downloaded."""

    content_type: str
    data: bytes


def write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file: a reader (or a rerun) never sees half an image."""
    partial = partial_path(path)
    partial.write_bytes(data)
    partial.replace(path)


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def streamed_to(partial: Path) -> Sink:
    """A sink writing the body to `partial`, from its start on every attempt; the caller renames it into place."""

    async def sink(response: aiohttp.ClientResponse) -> None:
        file: BinaryIO = await asyncio.to_thread(partial.open, "wb")
        try:
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                await asyncio.to_thread(file.write, chunk)
        finally:
            await asyncio.to_thread(file.close)

    return sink


def prefer(wait: int | None) -> dict[str, str]:
    if wait is None:
        return {}
    if not 0 <= wait <= MAX_WAIT_S:
        raise ValueError(f"wait takes 0 to {MAX_WAIT_S} seconds, not {wait}")
    return {"Prefer": f"wait={wait}"}


def read_photo(photo: Photo, filename: str | None) -> tuple[str, bytes]:
    if isinstance(photo, bytes):
        return filename or "photo.jpg", photo
    path = Path(photo)
    return filename or path.name, path.read_bytes()


def multipart(fields: dict[str, str], filename: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
    return {"data": form(fields, filename, data), "headers": headers}


def form(fields: dict[str, str], filename: str, data: bytes, *, file_field: str = "file") -> aiohttp.FormData:
    built = aiohttp.FormData()
    for name, value in fields.items():
        built.add_field(name, value)
    content_type = CONTENT_TYPES.get(Path(filename).suffix.lower(), "application/octet-stream")
    built.add_field(file_field, data, filename=filename, content_type=content_type)
    return built


def parse(model: type[ModelT], answer: Answer) -> ModelT:
    return model.model_validate_json(answer.body)


def api_error(answer: Answer) -> ApiError:
    try:
        detail = ErrorBody.model_validate_json(answer.body).error
    except ValidationError:  # not the API's own shape: a proxy's or the object store's page, say
        text = answer.body[:200].decode(errors="replace").strip()
        return ApiError(answer.status, "http_error", text or f"HTTP {answer.status}")
    return ApiError(answer.status, detail.code, detail.message, detail.field)
