"""A real api and worker process for the client to talk to, photos to send, and the `luster` command to run."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from shared.apikeys import create_key
from tests.conftest import TEST_OWNER, UNLIMITED
from tests.system import processes
from tests.system.receivers import serve
from tests.worker.photos import encode, house

CLIENT_DIR = processes.ROOT / "client"


@dataclass
class Stack:
    api: processes.Service
    worker: processes.Service | None
    key: str  # the API key itself, as LUSTER_API_KEY holds it

    @property
    def url(self) -> str:
        return self.api.url


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def api_token(pool: asyncpg.Pool) -> str:
    _, token = await create_key(pool, owner=TEST_OWNER, name="client test key", plan="premium", **UNLIMITED)
    return token


@pytest.fixture
async def api_only(service_env: dict[str, str], log_dir: Path, api_token: str) -> AsyncIterator[Stack]:
    """An api process with no worker yet: jobs stay queued until the test starts one (`start_worker`)."""
    api = processes.start("api", service_env, log_dir, port=processes.free_port())
    stack = Stack(api, None, api_token)
    try:
        await processes.wait_healthy(api, deadline_s=90)
        yield stack
    finally:
        for service in (stack.worker, api):
            if service is not None:
                await asyncio.to_thread(service.stop, 30)


@dataclass
class StoreDoor:
    """The object store's public address: passes each request on to the S3 server, noting each one's
    headers and method: presigned downloads (GET) and direct uploads (POST) alike."""

    endpoint: str
    url: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        self.methods.append(request.method)
        # The Host the link was signed for goes along: the signature covers it.
        forwarded = {name: request.headers[name] for name in ("Host", "Content-Type") if name in request.headers}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method, f"{self.endpoint}{request.path_qs}", headers=forwarded, data=await request.read()
            ) as answer,
        ):
            body = await answer.read()
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)


@pytest.fixture
async def store_door(s3_endpoint: str) -> AsyncIterator[StoreDoor]:
    door = StoreDoor(s3_endpoint)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", door.handle)
    async with serve(app) as port:
        door.url = f"http://127.0.0.1:{port}"
        yield door


@pytest.fixture
async def s3_stack(
    service_env: dict[str, str], s3_env: dict[str, str], store_door: StoreDoor, log_dir: Path, api_token: str
) -> AsyncIterator[Stack]:
    """An api and a worker keeping outputs in an S3 bucket, whose links point at `store_door`."""
    env = {name: value for name, value in service_env.items() if name not in {"UPLOADS_DIR", "OUTPUTS_DIR"}}
    env |= s3_env | {"S3_PUBLIC_ENDPOINT_URL": store_door.url}
    stack = Stack(processes.start("api", env, log_dir, port=processes.free_port()), None, api_token)
    start_worker(stack, env, log_dir)
    try:
        await processes.wait_healthy(stack.api, deadline_s=90)
        yield stack
    finally:
        for service in (stack.worker, stack.api):
            if service is not None:
                await asyncio.to_thread(service.stop, 30)


@pytest.fixture
async def stack(api_only: Stack, service_env: dict[str, str], log_dir: Path) -> Stack:
    start_worker(api_only, service_env, log_dir)
    return api_only


def start_worker(stack: Stack, service_env: dict[str, str], log_dir: Path, **env: str) -> None:
    stack.worker = processes.start("worker", {**service_env, **env}, log_dir)


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """Three different listing photos on disk."""
    folder = tmp_path / "photos"
    folder.mkdir()
    return [write_photo(folder, f"house-{seed}.jpg", seed) for seed in (1, 2, 3)]


def write_photo(folder: Path, name: str, seed: int) -> Path:
    path = folder / name
    path.write_bytes(encode(house(320 + seed * 8, 240, seed=seed)))
    return path


def cli_env(stack: Stack, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(CLIENT_DIR),
        "LUSTER_API_URL": stack.url,
        "LUSTER_API_KEY": stack.key,
        **extra,
    }


async def start_cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    """`luster ARGS…` as a process of its own, as a person runs it in `cwd`."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "luster_client",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def luster(args: Sequence[str], env: dict[str, str], cwd: Path, *, within: float = 90.0) -> Run:
    process = await start_cli(args, env, cwd)
    async with asyncio.timeout(within):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())
