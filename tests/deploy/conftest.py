"""Fixtures for the deployment tests: a database each deploy starts from empty, and a place for logs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import DATABASE_URL
from tests.deploy.launch import scratch_database


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """As on a first deploy: the pre-deploy command has to create the database and its schema."""
    async with scratch_database(DATABASE_URL, "deploy") as dsn:
        yield dsn
