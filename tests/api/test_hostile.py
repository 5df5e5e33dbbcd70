"""Hostile requests: every one gets a deliberate JSON 4xx, nothing is stored, and the api stays healthy.

Requests an HTTP client library will send go through the fixture's client (with its API key); requests
no well-behaved client can send (oversized or malformed request heads, bytes that are not text) go over
a raw socket to the same test server, with the same headers.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiohttp import FormData

from services.api import uploads
from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from shared.domain import Style, Tier
from shared.errors import PermanentEngineError
from tests.api import hostile_photos
from tests.harness.api import stored_files, table_counts
from tests.worker.photos import encode, house

if TYPE_CHECKING:
    from tests.conftest import Client
    from tests.harness.api import ApiFactory

pytestmark = pytest.mark.integration

JPEG = encode(house(200, 150))
UNKNOWN = str(uuid.UUID(int=7))
Build = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Hostile:
    """One hostile request as keyword arguments of the client's `request`, and the answer it must get."""

    method: str
    path: str
    status: int
    code: str
    build: Build = field(default=lambda: {})
    field: str | None = None


def raw_body(payload: bytes, content_type: str, **headers: str) -> Build:
    return lambda: {"data": payload, "headers": {"Content-Type": content_type, **headers}}


def multipart(parts: list[bytes], boundary: str = "b") -> Build:
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    return raw_body(body, f"multipart/form-data; boundary={boundary}")


def field_part(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def file_part(data: bytes, filename: str = "a.jpg", extra_header: bytes = b"") -> bytes:
    disposition = f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode()
    return disposition + extra_header + b"Content-Type: image/jpeg\r\n\r\n" + data


def photo_form(data: bytes, filename: str = "photo.jpg") -> Build:
    def build() -> dict[str, Any]:
        form = FormData()
        form.add_field("file", data, filename=filename, content_type="image/jpeg")
        return {"data": form}

    return build


def json_text(text: str) -> Build:
    return raw_body(text.encode(), "application/json")


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def gzip_bomb(size: int = 64 * 1024 * 1024) -> bytes:
    """A gzip stream of `size` zero bytes: about 64 KB on the wire."""
    return gzip.compress(b"\x00" * size, compresslevel=9)


JOB_ID = "9b7f0e4e-4b1c-4a59-9c35-7e0a4a8a3f10"
GOOD_TIME = "2024-05-01T10:00:00.123456+00:00"
BOMB = gzip_bomb()

HOSTILE: dict[str, Hostile] = {
    # Decompression bombs: a body with Content-Encoding is refused before a byte is inflated.
    "gzip JSON bomb": Hostile(
        "POST",
        "/jobs",
        415,
        "unsupported_content_encoding",
        raw_body(BOMB, "application/json", **{"Content-Encoding": "gzip"}),
        "Content-Encoding",
    ),
    "gzip multipart bomb": Hostile(
        "POST",
        "/assets",
        415,
        "unsupported_content_encoding",
        raw_body(BOMB, "multipart/form-data; boundary=b", **{"Content-Encoding": "gzip"}),
        "Content-Encoding",
    ),
    "deflate JSON": Hostile(
        "POST",
        "/jobs",
        415,
        "unsupported_content_encoding",
        raw_body(zlib.compress(b'{"prompt": "x"}'), "application/json", **{"Content-Encoding": "deflate"}),
        "Content-Encoding",
    ),
    "brotli to /assets": Hostile(
        "POST",
        "/assets",
        415,
        "unsupported_content_encoding",
        raw_body(b"\x8b\x02\x80", "multipart/form-data; boundary=b", **{"Content-Encoding": "br"}),
        "Content-Encoding",
    ),
    "gzip inside a file part": Hostile(
        "POST",
        "/assets",
        415,
        "unsupported_format",
        multipart([file_part(BOMB, extra_header=b"Content-Encoding: gzip\r\n")]),
        "file",
    ),
    # Multipart bombs
    "five thousand parts": Hostile(
        "POST", "/jobs", 413, "too_many_parts", multipart([field_part(f"f{i}", b"x") for i in range(5000)])
    ),
    "a part with a 200 KB header": Hostile(
        "POST",
        "/jobs",
        400,
        "malformed_body",
        multipart([b"X-Padding: " + b"a" * 200_000 + b"\r\n" + field_part("prompt", b"x")]),
    ),
    "fields too large together": Hostile(
        "POST", "/jobs", 413, "form_too_large", multipart([field_part(f"f{i}", b"x" * 15_000) for i in range(6)])
    ),
    "a file part after sixteen fields": Hostile(
        "POST",
        "/assets",
        413,
        "too_many_parts",
        multipart([*(field_part(f"f{i}", b"x") for i in range(16)), file_part(JPEG)]),
    ),
    # Forged cursors
    "cursor of garbage": Hostile("GET", f"/jobs?cursor={cursor_of('garbage')}", 422, "invalid_field", field="cursor"),
    "cursor in year 1": Hostile(
        "GET", f"/jobs?cursor={cursor_of('0001-01-01T00:00:00+00:00|' + JOB_ID)}", 422, "invalid_field", field="cursor"
    ),
    "cursor in year 9999": Hostile(
        "GET", f"/jobs?cursor={cursor_of('9999-12-31T23:59:59+00:00|' + JOB_ID)}", 422, "invalid_field", field="cursor"
    ),
    "cursor without a time zone": Hostile(
        "GET", f"/jobs?cursor={cursor_of('2024-05-01T10:00:00|' + JOB_ID)}", 422, "invalid_field", field="cursor"
    ),
    "cursor with a braced UUID": Hostile(
        "GET", f"/jobs?cursor={cursor_of(GOOD_TIME + '|{' + JOB_ID + '}')}", 422, "invalid_field", field="cursor"
    ),
    "cursor with a third part": Hostile(
        "GET", f"/jobs?cursor={cursor_of(GOOD_TIME + '|' + JOB_ID + '|x')}", 422, "invalid_field", field="cursor"
    ),
    "cursor of 5000 characters": Hostile("GET", "/jobs?cursor=" + "A" * 5000, 422, "invalid_field", field="cursor"),
    "cursor not base64": Hostile("GET", "/jobs?cursor=%21%21%21%21", 422, "invalid_field", field="cursor"),
    "cursor of latin-1 bytes": Hostile(
        "GET", "/jobs?cursor=" + base64.urlsafe_b64encode(b"\xe9t\xe9|x").decode(), 422, "invalid_field", field="cursor"
    ),
    # Path tricks
    "encoded newline": Hostile("GET", "/jobs/%0A", 400, "invalid_path"),
    "encoded NUL": Hostile("POST", "/jobs/%00/cancel", 400, "invalid_path"),
    "dot-dot in an id": Hostile("GET", "/jobs/..%2F..%2Fetc%2Fpasswd", 422, "invalid_field", field="job_id"),
    "non-UTF-8 byte in an id": Hostile("GET", "/jobs/%FF%FE", 422, "invalid_field", field="job_id"),
    "overlong path": Hostile("GET", "/jobs/" + "a" * 7000, 422, "invalid_field", field="job_id"),
    "unknown deep path": Hostile("GET", "/" + "/".join(["x"] * 500), 404, "not_found"),
    # Odd methods (405s name what is allowed, below)
    "DELETE a collection": Hostile("DELETE", "/jobs", 405, "method_not_allowed"),
    "PUT a job": Hostile("PUT", f"/jobs/{UNKNOWN}", 405, "method_not_allowed"),
    "PATCH /assets": Hostile("PATCH", "/assets", 405, "method_not_allowed"),
    # Found by schemathesis (ST204): the header guard answered 422 before the router's 405.
    "TRACE with a bad Idempotency-Key": Hostile(
        "TRACE", "/batches", 405, "method_not_allowed", build=lambda: {"headers": {"Idempotency-Key": "k" * 300}}
    ),
    # llhttp knows the registered methods only: another one never reaches the router.
    "a made-up method": Hostile("BREW", "/jobs", 400, "malformed_request"),
    # Malformed JSON and numbers out of any sane range
    "JSON 1e999": Hostile("POST", "/jobs", 400, "malformed_body", json_text('{"prompt": "x", "limit": 1e999}')),
    "JSON 5000-digit integer": Hostile(
        "POST", "/jobs", 400, "malformed_body", json_text('{"prompt": ' + "9" * 5000 + "}")
    ),
    "JSON NaN": Hostile("POST", "/jobs", 400, "malformed_body", json_text('{"prompt": NaN}')),
    "JSON -Infinity": Hostile("POST", "/jobs", 400, "malformed_body", json_text('{"prompt": -Infinity}')),
    "JSON with a byte-order mark": Hostile("POST", "/jobs", 400, "malformed_body", json_text('\ufeff{"prompt": "x"}')),
    "JSON cut short": Hostile("POST", "/jobs", 400, "malformed_body", json_text('{"asset_id": "')),
    "query limit 1e999": Hostile("GET", "/jobs?limit=1e999", 422, "invalid_field", field="limit"),
    "query limit of 30 digits": Hostile("GET", "/jobs?limit=" + "9" * 30, 422, "invalid_field", field="limit"),
    "query limit 5000 digits": Hostile("GET", "/jobs?limit=" + "9" * 5000, 422, "invalid_field", field="limit"),
    "query limit NaN": Hostile("GET", "/jobs?limit=NaN", 422, "invalid_field", field="limit"),
    "query limit negative": Hostile("GET", "/jobs?limit=-1", 422, "invalid_field", field="limit"),
    # Wrong content types
    "XML job": Hostile("POST", "/jobs", 400, "malformed_body", raw_body(b"<job/>", "application/xml")),
    "URL-encoded job": Hostile(
        "POST", "/jobs", 400, "malformed_body", raw_body(b"prompt=x", "application/x-www-form-urlencoded")
    ),
    "JSON to /assets": Hostile("POST", "/assets", 400, "malformed_body", json_text('{"file": "x"}')),
    "a photo as the raw body": Hostile("POST", "/assets", 400, "malformed_body", raw_body(JPEG, "image/jpeg")),
    # Header values the api stores must be plain visible ASCII
    "Idempotency-Key in Cyrillic": Hostile(
        "POST",
        "/jobs",
        422,
        "invalid_field",
        lambda: {"json": {"prompt": "x"}, "headers": {"Idempotency-Key": "ключ"}},
        "Idempotency-Key",
    ),
    "Idempotency-Key with a space": Hostile(
        "POST",
        "/jobs",
        422,
        "invalid_field",
        lambda: {"json": {"prompt": "x"}, "headers": {"Idempotency-Key": "a b"}},
        "Idempotency-Key",
    ),
    # Photos whose header declares what no listing photo is
    "PNG declaring 100 000 x 100 000": Hostile(
        "POST", "/assets", 415, "too_many_pixels", photo_form(hostile_photos.png_declaring(100_000, 100_000)), "file"
    ),
    "JPEG declaring 65 000 x 65 000": Hostile(
        "POST", "/assets", 415, "too_many_pixels", photo_form(hostile_photos.jpeg_declaring(65_000, 65_000)), "file"
    ),
    "PNG 13 000 px wide": Hostile(
        "POST", "/assets", 415, "side_too_long", photo_form(hostile_photos.png_declaring(13_000, 1_000)), "file"
    ),
    "JPEG 21:1": Hostile(
        "POST", "/assets", 415, "extreme_aspect_ratio", photo_form(hostile_photos.jpeg_declaring(2_100, 100)), "file"
    ),
    **{
        name: Hostile("POST", "/assets", 415, "corrupt_image", photo_form(make()), "file")
        for name, make in hostile_photos.CORRUPT_METADATA.items()
    },
}


async def assert_json_error(status: int, body: bytes, expected: Hostile | tuple[int, str, str | None]) -> None:
    want_status, want_code, want_field = (
        (expected.status, expected.code, expected.field) if isinstance(expected, Hostile) else expected
    )
    text = body.decode()
    assert status == want_status, text
    assert "Traceback" not in text
    error = json.loads(text)["error"]
    assert set(error) <= {"code", "message", "field"}
    assert error["message"]
    assert (error["code"], error.get("field")) == (want_code, want_field), error


@pytest.fixture
async def unchanged(api: Client, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]) -> AsyncIterator[None]:
    """Around a hostile request: nothing stored in any table or the uploads directory, and /health still 200."""
    before = await table_counts(pool), stored_files(storage_dirs[0])
    yield
    assert (await table_counts(pool), stored_files(storage_dirs[0])) == before
    health = await api.get("/health")
    assert health.status == 200, await health.text()


@pytest.mark.parametrize("case", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.usefixtures("unchanged")
async def test_a_hostile_request_gets_a_deliberate_4xx(api: Client, case: Hostile) -> None:
    response = await api.request(case.method, case.path, **case.build())

    assert response.content_type == "application/json"
    await assert_json_error(response.status, await response.read(), case)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/jobs", "GET,POST"),
        ("PUT", f"/jobs/{UNKNOWN}", "GET"),
        ("DELETE", "/assets", "GET,POST"),
        ("GET", "/assets/uploads", "POST"),
    ],
)
@pytest.mark.usefixtures("unchanged")
async def test_a_405_says_what_is_allowed(api: Client, method: str, path: str, allow: str) -> None:
    response = await api.request(method, path)

    await assert_json_error(response.status, await response.read(), (405, "method_not_allowed", None))
    assert response.headers["Allow"] == allow


# --- requests no HTTP library sends: a raw socket to the fixture's server -----------------------------------


async def send_raw(api: Client, request_line: bytes, headers: list[bytes], body: bytes = b"") -> tuple[int, bytes]:
    """Send one request as bytes, with the client's own default headers (its API key); (status, body)."""
    own = [f"{name}: {value}".encode() for name, value in api.session.headers.items()]
    head = [request_line, f"Host: {api.host}:{api.port}".encode(), *own, *headers, b"Connection: close"]
    if body and not any(header.lower().startswith(b"transfer-encoding:") for header in headers):
        head.append(f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection(api.host, api.port)
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(30):
            answer = await reader.read()  # the server closes the connection after answering
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


JOB_JSON = b'{"prompt": "x"}'
OVERSIZED_JSON = b'{"prompt": "' + b"x" * 70_000 + b'"}'  # the cap is 64 KiB
RAW: dict[str, tuple[bytes, list[bytes], bytes, tuple[int, str, str | None]]] = {
    "a request line of 9000 bytes": (b"GET /" + b"a" * 9000 + b" HTTP/1.1", [], b"", (414, "uri_too_long", None)),
    "a header of 10 000 bytes": (
        b"GET /health HTTP/1.1",
        [b"X-Big: " + b"a" * 10_000],
        b"",
        (431, "header_too_large", None),
    ),
    "200 headers": (
        b"GET /health HTTP/1.1",
        [f"X-H{i}: v".encode() for i in range(200)],
        b"",
        (431, "too_many_headers", None),
    ),
    "a method with a NUL": (b"GE\x00T /health HTTP/1.1", [], b"", (400, "malformed_request", None)),
    "not HTTP at all": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", [], b"", (400, "malformed_request", None)),
    "a header without a colon": (b"GET /health HTTP/1.1", [b"NoColonHere"], b"", (400, "malformed_request", None)),
    "a control character in a header": (
        b"POST /jobs HTTP/1.1",
        [b"Idempotency-Key: a\x01b", b"Content-Type: application/json"],
        JOB_JSON,
        (400, "malformed_request", None),
    ),
    "latin-1 bytes in Idempotency-Key": (
        b"POST /jobs HTTP/1.1",
        [b"Idempotency-Key: cl\xe9", b"Content-Type: application/json"],
        JOB_JSON,
        (400, "invalid_header", "Idempotency-Key"),
    ),
    "invalid UTF-8 in another header": (
        b"GET /jobs HTTP/1.1",
        [b"X-Note: \xff\xfe"],
        b"",
        (400, "invalid_header", "X-Note"),
    ),
    "a C1 control in a header": (
        b"GET /jobs HTTP/1.1",
        ["X-Note: a\u0085b".encode()],
        b"",
        (400, "invalid_header", "X-Note"),
    ),
    "a Content-Length that is not a number": (
        b"POST /jobs HTTP/1.1",
        [b"Content-Length: 12abc", b"Content-Type: application/json"],
        b"",
        (400, "malformed_request", None),
    ),
    # Whole on arrival, so read without waiting; no Content-Length said how large it was.
    "chunked JSON over its cap": (
        b"POST /jobs HTTP/1.1",
        [b"Transfer-Encoding: chunked", b"Content-Type: application/json"],
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(OVERSIZED_JSON), OVERSIZED_JSON),
        (413, "payload_too_large", None),
    ),
    "chunked framing that breaks": (
        b"POST /jobs HTTP/1.1",
        [b"Transfer-Encoding: chunked", b"Content-Type: application/json"],
        b'5\r\n{"pro\r\nZZ\r\nmpt\r\n0\r\n\r\n',
        (400, "malformed_request", None),
    ),
}


@pytest.mark.parametrize("case", RAW.values(), ids=RAW.keys())
@pytest.mark.usefixtures("unchanged")
async def test_a_malformed_request_head_gets_a_json_4xx(
    api: Client, case: tuple[bytes, list[bytes], bytes, tuple[int, str, str | None]]
) -> None:
    request_line, headers, body, expected = case

    status, answer = await send_raw(api, request_line, headers, body)

    await assert_json_error(status, answer, expected)


# --- photos with broken metadata: accepted with the metadata treated as absent --------------------------------


@pytest.mark.parametrize("make", hostile_photos.METADATA.values(), ids=hostile_photos.METADATA.keys())
async def test_a_photo_with_unreadable_metadata_is_accepted_as_stored(
    api: Client, pool: asyncpg.Pool, make: Callable[[], bytes]
) -> None:
    response = await api.post("/assets", **photo_form(make())())

    assert response.status == 201, await response.text()
    asset = (await response.json())["asset"]
    assert (asset["width"], asset["height"]) == (hostile_photos.WIDTH, hostile_photos.HEIGHT)
    assert await pool.fetchval("SELECT count(*) FROM assets") == 1
    assert (await api.get("/health")).status == 200


@pytest.mark.parametrize("make", hostile_photos.METADATA.values(), ids=hostile_photos.METADATA.keys())
def test_the_worker_engine_ignores_unreadable_metadata(make: Callable[[], bytes]) -> None:
    result = enhance_sync(EnhanceRequest(make(), "Test enhancement", Tier.FREE, Style.DEFAULT), max_pixels=4_000_000)

    assert (result.width, result.height) == (1024, 768)


@pytest.mark.parametrize("make", hostile_photos.CORRUPT_METADATA.values(), ids=hostile_photos.CORRUPT_METADATA.keys())
def test_the_worker_engine_fails_a_corrupt_photo_permanently(make: Callable[[], bytes]) -> None:
    # Permanent: the job fails once, with a code, and is never retried.
    with pytest.raises(PermanentEngineError) as caught:
        enhance_sync(EnhanceRequest(make(), "Test enhancement", Tier.FREE, Style.DEFAULT), max_pixels=4_000_000)

    assert caught.value.code == "corrupt_image"


@pytest.mark.parametrize(
    ("parameter", "stored"),
    [
        # filename* (RFC 5987) is percent-decoded: the way control characters and NUL reach the name.
        (b"filename*=UTF-8''bad%07name%1B.jpg", "badname.jpg"),
        (b"filename*=UTF-8''a%00b%0Ac.jpg", "abc.jpg"),
        (b"filename*=UTF-8''%01%02%03", None),
        (b"filename*=UTF-8''photos%5Chouse.jpg", "house.jpg"),
        (b'filename="../../etc/passwd"', "passwd"),
        ('filename="\u202egpj.exe"'.encode(), "gpj.exe"),
        (b'filename="caf\xe9.jpg"', "caf.jpg"),
        (b'filename="' + b"x" * 5000 + b'.jpg"', "x" * 255),
    ],
    ids=[
        "controls",
        "NUL and newline",
        "nothing printable",
        "windows path",
        "dot-dot",
        "bidi override",
        "latin-1 byte",
        "5000 characters",
    ],
)
async def test_a_file_name_is_cleaned_and_bounded(
    api: Client, pool: asyncpg.Pool, parameter: bytes, stored: str | None
) -> None:
    # Sent as bytes: client libraries percent-encode such names (and refuse control characters) themselves.
    part = b'Content-Disposition: form-data; name="file"; ' + parameter + b"\r\n\r\n" + JPEG

    response = await api.post("/assets", **multipart([part])())

    assert response.status == 201, await response.text()
    assert await pool.fetchval("SELECT filename FROM assets") == stored


# --- a body that arrives too slowly -------------------------------------------------------------------------


async def test_a_body_sent_too_slowly_is_cut_off_with_408(
    api_factory: ApiFactory, pool: asyncpg.Pool, storage_dirs: tuple[Path, Path]
) -> None:
    # The server's deadline is explicit and short; the client sends half a body and then nothing at all.
    slow = await api_factory(body_read_timeout_s=1.0)
    never = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"prompt": "Test enh'
        await never.wait()

    try:
        response = await slow.post("/jobs", data=trickle(), headers={"Content-Type": "application/json"})
        await assert_json_error(response.status, await response.read(), (408, "request_timeout", None))
    finally:
        never.set()
    assert await table_counts(pool) == {"assets": 0, "jobs": 0, "job_events": 0, "outbox": 0}
    assert stored_files(storage_dirs[0]) == []
    assert (await slow.get("/health")).status == 200


async def test_a_form_sent_too_slowly_is_cut_off_with_408(api_factory: ApiFactory, pool: asyncpg.Pool) -> None:
    slow = await api_factory(body_read_timeout_s=1.0)
    never = asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b"--b\r\n" + file_part(JPEG[:1000])
        await never.wait()

    try:
        response = await slow.post(
            "/assets", data=trickle(), headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        await assert_json_error(response.status, await response.read(), (408, "request_timeout", None))
    finally:
        never.set()
    assert await pool.fetchval("SELECT count(*) FROM assets") == 0


# --- bounded decoding and ranges --------------------------------------------------------------------------


class _HeldFile(io.BytesIO):
    """A photo whose first read waits until the test lets it go: a check that is still running."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reading, self.release = threading.Event(), threading.Event()

    def read(self, size: int | None = -1, /) -> bytes:
        self.reading.set()
        self.release.wait(30)
        return super().read(size)


def _one_check_at_a_time() -> uploads.DecodeLimits:
    return uploads.DecodeLimits(ThreadPoolExecutor(1), max_pixels=10**7, max_side=10**4, max_aspect_ratio=10.0)


async def test_a_check_holds_its_thread_until_it_ends_even_when_the_request_is_gone() -> None:
    """Each check thread may hold a decode's memory: a cancelled request must not free one for another."""
    limits, photo = _one_check_at_a_time(), encode(house(64, 48))
    held, after = _HeldFile(photo), _HeldFile(photo)
    after.release.set()
    try:
        first = asyncio.create_task(uploads.check_image(held, limits))
        assert await asyncio.to_thread(held.reading.wait, 30)
        first.cancel()
        second = asyncio.create_task(uploads.check_image(after, limits))
        # The second's read would set `reading` at once if it had a thread of its own.
        assert not await asyncio.to_thread(after.reading.wait, 0.5)
        held.release.set()
        await second
        assert after.reading.is_set()
    finally:
        held.release.set()
        limits.close()


async def test_a_check_does_not_wait_behind_storage_writes_on_the_default_executor() -> None:
    """Stored files are written (and fsynced) on the default executor's threads; checks have their own."""
    loop, busy, free = asyncio.get_running_loop(), ThreadPoolExecutor(1), threading.Event()
    loop.set_default_executor(busy)
    limits = _one_check_at_a_time()
    try:
        blocked = loop.run_in_executor(None, free.wait, 30)  # a long fsync holding the only default thread
        info = await asyncio.wait_for(uploads.check_image(io.BytesIO(encode(house(64, 48))), limits), 20)
        assert (info.format, info.width, info.height) == ("JPEG", 64, 48)
        assert not blocked.done()
    finally:
        free.set()
        limits.close()


@pytest.mark.parametrize("value", ["bytes=abc", "bytes=99999999-", "bytes=0-1,2-3", "items=0-1", "bytes=5-1"])
async def test_a_range_a_file_cannot_serve_is_a_json_416(api: Client, value: str) -> None:
    """aiohttp's own 416 is an empty body decided past the middlewares; ours names the problem."""
    response = await api.get("/docs", headers={"Range": value})

    assert response.status == 416
    assert response.headers["Content-Range"].startswith("bytes */")
    assert (await response.json())["error"] | {"message": ""} == {
        "code": "range_not_satisfiable",
        "message": "",
        "field": "Range",
    }


async def test_a_range_a_file_can_serve_is_served(api: Client) -> None:
    whole = await (await api.get("/docs")).read()
    for value, part in [("bytes=0-9", whole[:10]), ("bytes=-10", whole[-10:]), ("bytes=10-", whole[10:])]:
        response = await api.get("/docs", headers={"Range": value})
        assert response.status == 206 and await response.read() == part, value


@pytest.mark.parametrize("value", ["bytes=abc", "bytes=99999999-", "bytes=0-1,2-3", "items=0-1"])
async def test_a_range_on_a_route_without_ranges_is_ignored(api: Client, value: str) -> None:
    response = await api.get("/jobs", headers={"Range": value})

    assert response.status == 200
    assert await response.json() == {"jobs": [], "next_cursor": None}
