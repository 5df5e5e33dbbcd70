"""Schemathesis against a real api process, with a real key and every one of its checks.

The run is the schemathesis CLI, as `make fuzz` and a person would run it; this file is also its hooks
module (SCHEMATHESIS_HOOKS), which teaches it two values no schema can generate: a photo the server can
decode, and a cursor the server issued. FUZZ_EXAMPLES sets the size (a short run here, `make fuzz` a long one);
FUZZ_ARGS passes more of the CLI's options.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jsonschema_rs
import pytest
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transforms import to_wire_text

from tests.conftest import bearer
from tests.system.processes import free_port, start, wait_healthy

HOOKS = Path(__file__).resolve()
ROOT = HOOKS.parents[2]
CURSORS_ENV = "LUSTER_FUZZ_CURSORS"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
# The short run (make test) draws the same cases every time, so CI never fails on a case drawn by chance;
# `make fuzz` draws new ones at every run (or FUZZ_SEED's), and what it finds is fixed, then kept here.
SEED = os.environ.get("FUZZ_SEED", "20261204" if "FUZZ_EXAMPLES" not in os.environ else "")
JSON_VALUES = (str, int, float, bool, type(None))
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# A public address written as one: the api resolves it without DNS and takes it as a webhook target.
PUBLIC_HOOK = "https://93.184.215.14/hooks/fuzz"


def _photo(fmt: str, width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, fmt)
    return buffer.getvalue()


def _photos(fmt: str) -> st.SearchStrategy[bytes]:
    rgb = st.tuples(*[st.integers(0, 255)] * 3)
    return st.builds(_photo, st.just(fmt), st.integers(8, 64), st.integers(8, 64), rgb)


def _issued_cursor(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """A cursor the API issued in place of a made-up one, in a request meant to be valid.

    The document can say what a cursor looks like, not which ones the server gave out: a made-up cursor
    of the right shape is rightly a 422, so "valid" cases carry a real one. Invalid cases keep theirs.
    """
    cursors = json.loads(os.environ[CURSORS_ENV])
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.query, dict):
        return case
    if "cursor" in case.query and case.query["cursor"] not in cursors:
        case.query["cursor"] = cursors[len(str(case.query["cursor"])) % len(cursors)]
    return case


def _real_photo(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """A decodable photo in place of whatever bytes a request meant to be valid carries as its `file`.

    The document says a file part is a JPEG, PNG or WebP image; no schema can say its bytes must decode, and
    the media-type strategies above do not reach every phase's file parts. Invalid cases keep their bytes.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    body: dict[str, Any] = case.body
    sent = body.get("file")
    if isinstance(sent, list):  # a batch's photos, a part each
        body["file"] = [_as_photo(item) for item in sent]
    elif isinstance(sent, bytes | str):
        body["file"] = _as_photo(sent)
    return case


def _as_photo(sent: object) -> object:
    if isinstance(sent, bytes | str) and not _is_photo(sent):
        return _photo("JPEG", 16, 16, (len(sent) % 256, 90, 160))
    return sent


def _reachable_hooks(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """A webhook URL whose host resolves to a public address in place of a made-up one, in a valid request.

    The document can say what a URL looks like, not that its host resolves (the api looks it up, and
    refuses one that does not): a made-up host is rightly a 422. Invalid cases keep theirs.
    """
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and isinstance(case.body, dict):
        _replace_hooks(case.body)
    return case


def _replace_hooks(value: object) -> None:
    """Every `webhook_url` string of a body (a batch's and its jobs') as PUBLIC_HOOK."""
    if isinstance(value, list):
        for item in value:
            _replace_hooks(item)
    elif isinstance(value, dict):
        for name, item in value.items():
            if name == "webhook_url" and isinstance(item, str):
                value[name] = PUBLIC_HOOK
            else:
                _replace_hooks(item)


def _is_photo(sent: bytes | str) -> bool:
    head = sent.encode("latin-1", "replace")[:12] if isinstance(sent, str) else sent[:12]
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _as_json(value: object) -> object:
    """A generated body as its document sees it: file parts (bytes, schemathesis' Binary) are strings."""
    if isinstance(value, dict):
        return {name: _as_json(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_as_json(item) for item in value]
    return value if type(value) in JSON_VALUES else ""  # Binary is a str subclass no validator takes


def _valid_as_labelled(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> bool:
    """Drop the "valid" bodies that break the document themselves, and the "invalid" forms that are valid.

    Schemathesis 4.32 labels some multipart bodies valid that are not: its coverage phase fills every
    required field but the files with "" whatever its schema says, and its fuzzing phase can send both
    branches of a `oneOf` (`asset_id` and `file`). The server rightly refuses those; no contract is broken.
    """
    meta = case.meta
    if meta is None:
        return True
    if not meta.generation.mode.is_positive:
        return not _valid_as_sent(case)
    if not all(_is_uuid(value) for value in (case.path_parameters or {}).values()):
        # Every path parameter is a UUID; a link from a field that may be null (a job's `batch_id`) sends "None".
        return False
    if not isinstance(case.body, dict):
        return True
    for body in case.operation.body:
        if body.media_type == case.media_type and body.resolved_schema:
            # File parts are bytes (schemathesis' Binary) on the wire and a string in the document.
            sent = _as_json(case.body)
            return bool(jsonschema_rs.validator_for(body.resolved_schema).is_valid(sent))
    return True


def _valid_as_sent(case: schemathesis.Case[Any]) -> bool:
    """Whether a negative multipart case is negative only in a way no form can carry.

    A form field is text: a `prompt` of -4.0 arrives as the text "-4.0", which is a prompt, and the server
    rightly accepts it. Schemathesis 4.32 still reports ST201 then when the form has a file part (its own
    re-reading of the sent form cannot validate the file's bytes). Such a case is dropped only when its
    body, read as the server reads it, is valid and nothing outside the body was made invalid.
    """
    meta = case.meta
    if meta is None or not (case.media_type or "").startswith("multipart/") or not isinstance(case.body, dict):
        return False
    if any(c.mode.is_negative for where, c in meta.components.items() if where != ParameterLocation.BODY):
        return False
    sent = {name: _as_sent(value) for name, value in case.body.items()}
    if any(value is _UNSENDABLE for value in sent.values()):
        return False
    for body in case.operation.body:
        if body.media_type == case.media_type and body.resolved_schema:
            return bool(jsonschema_rs.validator_for(body.resolved_schema).is_valid(sent))
    return False


_UNSENDABLE = object()


def _as_sent(value: object) -> object:
    """A form field as the server receives it: a file part as the document's string, any other scalar as text."""
    if type(value) is str:
        return value
    if isinstance(value, bytes | str):  # a file part (schemathesis' Binary is a str subclass)
        return ""
    if value is None or type(value) in (bool, int, float):
        return to_wire_text(value)
    if isinstance(value, list) and all(isinstance(item, bytes | str) and type(item) is not str for item in value):
        return ["" for _ in value]  # a batch's photos
    return _UNSENDABLE  # objects and lists of values: how a form carries them is the server's reading


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# Registered in the schemathesis process only: random bytes are not a photo, so "valid" files are real
# JPEG, PNG and WebP images of the types the document names.
if os.environ.get("SCHEMATHESIS_HOOKS") == str(HOOKS):
    for media_type, fmt in FORMATS.items():
        schemathesis.openapi.media_type(media_type, _photos(fmt))
    schemathesis.hook("map_case")(_issued_cursor)
    schemathesis.hook("map_case")(_real_photo)
    schemathesis.hook("map_case")(_reachable_hooks)
    schemathesis.hook("filter_case")(_valid_as_labelled)


async def _post(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    async with session.post(url, **kwargs) as response:
        assert response.status in (201, 202), await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def seed(base_url: str, auth: dict[str, str], photo: bytes) -> list[str]:
    """An asset and a few jobs of the fuzzing key's owner; the cursors of their pages."""
    async with aiohttp.ClientSession(base_url, headers=auth) as session:
        form = aiohttp.FormData()
        form.add_field("file", photo, filename="house.jpg", content_type="image/jpeg")
        asset = (await _post(session, "/assets", data=form))["asset"]
        for tier in ("free", "premium", "free"):
            await _post(session, "/jobs", json={"asset_id": asset["id"], "prompt": "Brighter", "tier": tier})
        cursors: list[str] = []
        async with session.get("/jobs", params={"limit": "1"}) as response:
            page = await response.json()
        while page["next_cursor"] is not None:
            cursors.append(page["next_cursor"])
            async with session.get("/jobs", params={"limit": "1", "cursor": cursors[-1]}) as response:
                page = await response.json()
        return cursors


async def run_schemathesis(
    base_url: str, auth: dict[str, str], cursors: list[str], workdir: Path, examples: int
) -> tuple[int, str]:
    """The CLI with all checks; (exit code, its report)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        CURSORS_ENV: json.dumps(cursors),
    }
    arguments = [
        f"{base_url}/openapi.json",
        "--checks=all",
        f"--max-examples={examples}",
        f"--header=Authorization: {auth['Authorization']}",
        "--generation-database=none",  # nothing left behind; a failure prints its reproducer
        "--request-timeout=20",
        "--no-color",
        "--output-truncate=false",
        *([f"--seed={SEED}"] if SEED else []),
        # More of the CLI's own options, to aim a long run (say `--include-path=/jobs --mode=negative`).
        *shlex.split(os.environ.get("FUZZ_ARGS", "")),
    ]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        *arguments,
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


# About 90 s for ~830 cases (8 examples) on an idle 2-core machine; room for a loaded one, and for `make fuzz`'s
# larger run (the marker, not the command line's timeout, is what pytest-timeout applies).
@pytest.mark.timeout(max(360, 40 * EXAMPLES))
async def test_schemathesis_finds_no_failure(
    pool: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path, photo: bytes
) -> None:
    auth = await bearer(pool, owner="fuzz")
    api = start("api", service_env, tmp_path, port=free_port())
    try:
        await wait_healthy(api)
        cursors = await seed(api.url, auth, photo)
        code, report = await run_schemathesis(api.url, auth, cursors, tmp_path, EXAMPLES)
    finally:
        api.stop()
    print(report)  # the numbers of a passing run, for -s and for `make fuzz`
    assert code == 0, report
