"""Malformed requests: each gets a JSON 4xx naming the problem, never a 5xx, and nothing is written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiohttp import ClientResponse, FormData

from services.api.schemas import PROMPT_MAX_LENGTH
from tests.harness.api import job_form, stored_files, table_counts
from tests.worker.photos import encode, house

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import ApiFactory, Uploader

pytestmark = pytest.mark.integration

UNKNOWN = str(uuid.UUID(int=42))
JPEG = encode(house(200, 150))
TRUNCATED_JPEG = JPEG[: len(JPEG) // 2]
GIF = (  # a 1x1 GIF, the smallest valid one
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
MULTIPART = "multipart/form-data; boundary=b"
FILE_PART = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
NESTED = (
    b'--b\r\nContent-Disposition: form-data; name="inner"\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n'
    b"--c\r\nContent-Type: text/plain\r\n\r\nhi\r\n--c--\r\n\r\n--b--\r\n"
)
TEXT = b"These are not the pixels you are looking for.\n" * 20
PNG_SIGNATURE_ONLY = b"\x89PNG\r\n\x1a\n" + bytes(200)  # recognised as a PNG, and nothing readable after


@dataclass(frozen=True)
class Case:
    """One bad request: how to send it (given a real asset id) and the answer it must get."""

    method: str
    path: str
    status: int
    body: Callable[[str], dict[str, Any]] = field(default=lambda _: {})
    field: str | None = None
    code: str | None = None


def form(**fields: str) -> Callable[[str], dict[str, Any]]:
    """A multipart job form; the value "{asset}" stands for the real asset's id."""
    return lambda asset: {"data": job_form({k: v.replace("{asset}", asset) for k, v in fields.items()})}


def inline(data: bytes, filename: str = "photo.jpg", **fields: str) -> Callable[[str], dict[str, Any]]:
    fields = {"prompt": "Test enhancement", **fields}
    return lambda asset: {
        "data": job_form({k: v.replace("{asset}", asset) for k, v in fields.items()}, file=data, filename=filename)
    }


def raw(payload: bytes, content_type: str) -> Callable[[str], dict[str, Any]]:
    return lambda _: {"data": payload, "headers": {"Content-Type": content_type}}


def as_json(**fields: object) -> Callable[[str], dict[str, Any]]:
    return lambda asset: {
        "json": {k: v.replace("{asset}", asset) if isinstance(v, str) else v for k, v in fields.items()}
    }


def asset_file(
    data: bytes, filename: str = "photo.jpg", content_type: str = "image/jpeg"
) -> Callable[[str], dict[str, Any]]:
    def build(_: str) -> dict[str, Any]:
        upload = FormData()
        upload.add_field("file", data, filename=filename, content_type=content_type)
        return {"data": upload}

    return build


CASES: dict[str, Case] = {
    # POST /jobs, multipart as the guide's curl sends it
    "missing asset_id": Case("POST", "/jobs", 422, form(prompt="Test enhancement"), "asset_id", "invalid_field"),
    "unknown asset_id": Case("POST", "/jobs", 404, form(asset_id=UNKNOWN, prompt="x"), "asset_id", "not_found"),
    "asset_id not a uuid": Case("POST", "/jobs", 422, form(asset_id="asset-1", prompt="x"), "asset_id"),
    "asset_id sql-ish": Case("POST", "/jobs", 422, form(asset_id="1' OR '1'='1", prompt="x"), "asset_id"),
    "unknown tier": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt="x", tier="gold"), "tier"),
    "unknown style": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt="x", style="vaporwave"), "style"),
    "empty prompt": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt=""), "prompt"),
    "blank prompt": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt="   \n "), "prompt"),
    "missing prompt": Case("POST", "/jobs", 422, form(asset_id="{asset}"), "prompt"),
    "over-long prompt": Case(
        "POST", "/jobs", 422, form(asset_id="{asset}", prompt="x" * (PROMPT_MAX_LENGTH + 1)), "prompt"
    ),
    "huge form field": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt="x" * 100_000), "prompt"),
    "only NULs in prompt": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt="\x00\x00"), "prompt"),
    "unknown field": Case("POST", "/jobs", 422, form(asset_id="{asset}", prompt="x", colour="red"), "colour"),
    # POST /jobs, JSON
    "broken JSON": Case("POST", "/jobs", 400, raw(b'{"asset_id": "', "application/json"), code="malformed_body"),
    "JSON array": Case("POST", "/jobs", 400, raw(b'[{"prompt": "x"}]', "application/json"), code="malformed_body"),
    "JSON string": Case("POST", "/jobs", 400, raw(b'"prompt"', "application/json"), code="malformed_body"),
    "empty JSON body": Case("POST", "/jobs", 400, raw(b"", "application/json"), code="malformed_body"),
    "JSON not UTF-8": Case("POST", "/jobs", 400, raw(b'{"prompt": "\xff\xfe"}', "application/json")),
    "JSON nested too deeply": Case("POST", "/jobs", 400, raw(b"[" * 30_000 + b"]" * 30_000, "application/json")),
    "JSON over its own cap": Case(
        "POST", "/jobs", 413, raw(b'{"prompt": "' + b"x" * 70_000 + b'"}', "application/json"), code="payload_too_large"
    ),
    "JSON invisible prompt": Case("POST", "/jobs", 422, as_json(asset_id="{asset}", prompt="\u0000\u200b"), "prompt"),
    "JSON in an unknown charset": Case("POST", "/jobs", 400, raw(b"{}", "application/json; charset=bogus")),
    "JSON asset_id a number": Case("POST", "/jobs", 422, as_json(asset_id=7, prompt="x"), "asset_id"),
    "JSON prompt a number": Case("POST", "/jobs", 422, as_json(asset_id="{asset}", prompt=12), "prompt"),
    "JSON prompt an object": Case("POST", "/jobs", 422, as_json(asset_id="{asset}", prompt={"a": 1}), "prompt"),
    "JSON unknown tier": Case("POST", "/jobs", 422, as_json(asset_id="{asset}", prompt="x", tier="Gold"), "tier"),
    "JSON null tier": Case("POST", "/jobs", 422, as_json(asset_id="{asset}", prompt="x", tier=None), "tier"),
    "plain text body": Case("POST", "/jobs", 400, raw(b"asset_id=1", "text/plain")),
    "multipart without boundary": Case("POST", "/jobs", 400, raw(b"--x\r\n", "multipart/form-data")),
    "multipart cut short": Case(
        "POST", "/jobs", 400, raw(b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhi', MULTIPART)
    ),
    "multipart part without a name": Case(
        "POST", "/jobs", 400, raw(b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n", MULTIPART)
    ),
    "multipart NUL in part header": Case(
        "POST", "/assets", 400, raw(FILE_PART.replace(b"a.jpg", b"a\x00.jpg") + JPEG + b"\r\n--b--\r\n", MULTIPART)
    ),
    "multipart nested": Case("POST", "/jobs", 400, raw(NESTED, MULTIPART)),
    "multipart file cut short": Case("POST", "/assets", 400, raw(FILE_PART + JPEG[:2000], MULTIPART)),
    # POST /jobs with the file inline
    "inline text file": Case("POST", "/jobs", 415, inline(TEXT, "photo.jpg"), "file", "unsupported_format"),
    "inline truncated JPEG": Case("POST", "/jobs", 415, inline(TRUNCATED_JPEG), "file", "corrupt_image"),
    "inline GIF": Case("POST", "/jobs", 415, inline(GIF, "anim.gif"), "file", "unsupported_format"),
    "inline file and asset_id": Case("POST", "/jobs", 422, inline(JPEG, asset_id="{asset}"), "asset_id"),
    "inline file, unknown tier": Case("POST", "/jobs", 422, inline(JPEG, tier="gold"), "tier"),
    "inline empty file": Case("POST", "/jobs", 422, inline(b""), "file"),
    # POST /assets
    "text file as image": Case("POST", "/assets", 415, asset_file(TEXT), "file", "unsupported_format"),
    "truncated JPEG": Case("POST", "/assets", 415, asset_file(TRUNCATED_JPEG), "file", "corrupt_image"),
    "JPEG header only": Case("POST", "/assets", 415, asset_file(JPEG[:40]), "file", "corrupt_image"),
    "PNG signature only": Case("POST", "/assets", 415, asset_file(PNG_SIGNATURE_ONLY), "file", "corrupt_image"),
    "GIF": Case("POST", "/assets", 415, asset_file(GIF, "anim.gif", "image/gif"), "file", "unsupported_format"),
    "GIF declared as JPEG": Case("POST", "/assets", 415, asset_file(GIF), "file", "unsupported_format"),
    "empty file": Case("POST", "/assets", 422, asset_file(b""), "file"),
    "no file part": Case("POST", "/assets", 422, form(prompt="x"), "file"),
    "JSON to /assets": Case("POST", "/assets", 400, as_json(file="aGVsbG8="), code="malformed_body"),
    # reading, listing, canceling
    "unknown job": Case("GET", f"/jobs/{UNKNOWN}", 404, field="job_id", code="not_found"),
    "job id not a uuid": Case("GET", "/jobs/42", 422, field="job_id"),
    "output of unknown job": Case("GET", f"/jobs/{UNKNOWN}/output", 404, field="job_id"),
    "output id not a uuid": Case("GET", "/jobs/..%2F..%2Fetc%2Fpasswd/output", 422, field="job_id"),
    "cancel unknown job": Case("POST", f"/jobs/{UNKNOWN}/cancel", 404, field="job_id"),
    "cancel id not a uuid": Case("POST", "/jobs/nope/cancel", 422, field="job_id"),
    "list with unknown status": Case("GET", "/jobs?status=done", 422, field="status"),
    "list with unknown tier": Case("GET", "/jobs?tier=gold", 422, field="tier"),
    "list with forged cursor": Case("GET", "/jobs?cursor=bm90LWEtY3Vyc29y", 422, field="cursor"),
    "list with garbage cursor": Case("GET", "/jobs?cursor=%%%", 422, field="cursor"),
    "list with unknown parameter": Case("GET", "/jobs?sort=asc", 422, field="sort"),
    "unknown route": Case("GET", "/jobz", 404, code="not_found"),
    "unknown nested route": Case("GET", "/jobs/1/2/3", 404, code="not_found"),
    "wrong method": Case("DELETE", "/jobs", 405, code="method_not_allowed"),
}


async def assert_error(response: ClientResponse, status: int, *, field: str | None, code: str | None) -> dict[str, Any]:
    """The one error shape: a 4xx with {"error": {"code", "message", "field"?}} and no internals."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    assert "Traceback" not in text
    assert 'File "' not in text
    assert " object at 0x" not in text  # a Python object's repr
    error: dict[str, Any] = json.loads(text)["error"]
    assert set(error) <= {"code", "message", "field"}
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error
    if code is not None:
        assert error["code"] == code, error
    return error


async def _snapshot(pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]) -> tuple[dict[str, int], list[str]]:
    return await table_counts(pool), stored_files(storage_dirs[0])


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_bad_input_gets_a_json_4xx_and_writes_nothing(
    api: Client, upload: Uploader, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path], case: Case
) -> None:
    asset = await upload()
    before = await _snapshot(pool, storage_dirs)

    response = await api.request(case.method, case.path, **case.body(asset["id"]))

    await assert_error(response, case.status, field=case.field, code=case.code)
    assert await _snapshot(pool, storage_dirs) == before


async def test_an_over_long_idempotency_key_is_refused(api: Client, upload: Uploader, pool: asyncpg.Pool) -> None:
    asset = await upload()

    response = await api.post(
        "/jobs", json={"asset_id": asset["id"], "prompt": "x"}, headers={"Idempotency-Key": "k" * 256}
    )

    await assert_error(response, 422, field="Idempotency-Key", code=None)
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/assets", asset_file(encode(house(400, 300), "PNG"))),
        ("/jobs", inline(encode(house(400, 300), "PNG"))),
        ("/jobs", raw(json.dumps({"prompt": "x" * 200_000}).encode(), "application/json")),
    ],
    ids=["upload", "inline upload", "JSON body"],
)
async def test_an_oversize_upload_is_413(
    api_factory: ApiFactory,
    pool: asyncpg.Pool,
    storage_dirs: tuple[Path, Path],
    path: str,
    body: Callable[[str], dict[str, Any]],
) -> None:
    small = await api_factory(max_upload_bytes=4096)
    before = await _snapshot(pool, storage_dirs)

    response = await small.post(path, **body(UNKNOWN))

    await assert_error(response, 413, field=None, code="payload_too_large")
    assert await _snapshot(pool, storage_dirs) == before


async def test_an_image_over_the_pixel_cap_is_refused(
    api_factory: ApiFactory, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]
) -> None:
    capped = await api_factory(max_image_pixels=100 * 100)

    response = await capped.post("/assets", **asset_file(encode(house(200, 150)))(UNKNOWN))

    await assert_error(response, 415, field="file", code="too_many_pixels")
    assert await _snapshot(pool, storage_dirs) == ({"assets": 0, "jobs": 0, "job_events": 0, "outbox": 0}, [])
