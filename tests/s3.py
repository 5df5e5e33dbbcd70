"""A real S3-compatible server for the tests: moto's standalone server, as a process on a local port."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from shared.settings import StorageSettings
from tests.system.processes import free_port

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


@contextmanager
def s3_server(log_dir: Path) -> Iterator[str]:
    """Start the server, wait until it answers, yield its endpoint URL; stop it afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with (log_dir / "moto.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    try:
        _wait_until_answering(endpoint, process)
        yield endpoint
    finally:
        process.terminate()
        process.wait(10)


def _wait_until_answering(endpoint: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise RuntimeError(f"the S3 server did not answer at {endpoint} within {deadline_s:g} s")


def new_bucket_name() -> str:
    return f"luster-test-{uuid.uuid4().hex[:12]}"


def create_bucket(endpoint: str, bucket: str) -> None:
    """Create a bucket with a plain signed-less request: moto accepts any credentials."""
    request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


def settings_on(env: Mapping[str, Any]) -> StorageSettings:
    """Storage settings from environment-style names (validated as the environment's values are)."""
    return StorageSettings.model_validate({name.lower(): value for name, value in env.items()})


def s3_environment(endpoint: str, bucket: str) -> dict[str, str]:
    """What a service reads to use this server's `bucket`."""
    return {
        "STORAGE": "s3",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": endpoint,
        "S3_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }


@asynccontextmanager
async def s3_client(env: Mapping[str, str]) -> AsyncIterator[S3Client]:
    """A client of the test's own on the server and credentials of `env` (the variables above), not the services'."""
    options: dict[str, Any] = {
        "endpoint_url": env["S3_ENDPOINT_URL"],
        "region_name": env["S3_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "config": AioConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 5}),
    }
    async with get_session().create_client("s3", **options) as client:
        yield client


async def begin_multipart_upload(env: Mapping[str, str], object_key: str) -> None:
    """What a writer killed mid-way leaves in the bucket of `env`: a multipart upload begun, never completed."""
    async with s3_client(env) as client:
        await client.create_multipart_upload(Bucket=env["S3_BUCKET"], Key=object_key)
