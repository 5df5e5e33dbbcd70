"""Fixtures of the fault-injection suite: one `Chaos` harness per scenario, servers always left running."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

from shared.topology import Topology
from tests.chaos import cluster, report, servers
from tests.chaos.environment import chaos_env
from tests.chaos.harness import Chaos
from tests.chaos.size import SIZE
from tests.conftest import AMQP_URL, DATABASE_URL
from tests.worker.photos import encode, house


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every scenario is parametrised by its job count (CHAOS_JOBS; CHAOS_BACKLOG_JOBS for the backlog)."""
    if "jobs" in metafunc.fixturenames:
        metafunc.parametrize("jobs", [SIZE.jobs], ids=lambda n: f"{n}-jobs")
    if "backlog_jobs" in metafunc.fixturenames:
        metafunc.parametrize("backlog_jobs", [SIZE.backlog], ids=lambda n: f"{n}-jobs")


RAN: list[bool] = []


@pytest.fixture(scope="session", autouse=True)
def servers_left_running() -> Iterator[None]:
    """Whatever happened, both servers answer when the suite ends (and the results file starts empty)."""
    report.reset()
    RAN.append(True)
    asyncio.run(servers.ensure_running(AMQP_URL, DATABASE_URL))
    yield
    asyncio.run(servers.ensure_running(AMQP_URL, DATABASE_URL))


@pytest.fixture(scope="session")
def running_cluster() -> Iterator[None]:
    """The local cluster of scripts/cluster.sh, started for the session's cluster scenarios unless it was
    running already (`make cluster`): then it is left running, else removed when the session ends."""
    was_running = asyncio.run(cluster.is_healthy())
    asyncio.run(cluster.ensure_cluster())
    yield
    if not was_running:
        asyncio.run(cluster.stop_cluster())


@pytest.fixture
def exclusive() -> Callable[[], contextlib.AbstractAsyncContextManager[None]]:
    """Take the chaos lock (waiting for other pytest runs) before stopping a shared server."""
    return functools.partial(servers.exclusive, AMQP_URL, DATABASE_URL)


@contextlib.asynccontextmanager
async def _harness(
    request: pytest.FixtureRequest, env: dict[str, str], pool: asyncpg.Pool, topology: Topology
) -> AsyncIterator[Chaos]:
    """The harness on the servers `env` names: the machine's own, or a cluster's (test_cluster_failover.py)."""
    await pool.execute("TRUNCATE workers")
    doc = (request.function.__doc__ or request.node.name).strip()
    log_dir = report.RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{request.node.name}"
    log_dir.mkdir(parents=True)
    harness = Chaos(
        doc.splitlines()[0].rstrip("."),
        size=SIZE,
        env=chaos_env(env, SIZE),
        log_dir=log_dir,
        pool=pool,
        topology=topology,
        amqp_url=env["AMQP_URL"],
        photo=encode(house(320, 240)),
    )
    try:
        yield harness
    finally:
        await harness.close()
        harness.record_unfinished("the scenario stopped before its verdict (see the test's error)")


@pytest.fixture
async def chaos(
    request: pytest.FixtureRequest,
    service_env: dict[str, str],  # the base; chaos_env adds the chaos settings
    pool: asyncpg.Pool,
    topology: Topology,
) -> AsyncIterator[Chaos]:
    async with _harness(request, service_env, pool, topology) as harness:
        yield harness


@pytest.fixture
async def bucket_chaos(
    request: pytest.FixtureRequest,
    service_env: dict[str, str],
    s3_env: dict[str, str],  # a fresh bucket of this scenario's own on the session's S3 server
    pool: asyncpg.Pool,
    topology: Topology,
) -> AsyncIterator[Chaos]:
    """The harness with every service on `STORAGE=s3`: uploads and outputs live only in the bucket."""
    async with _harness(request, {**service_env, **s3_env}, pool, topology) as harness:
        yield harness


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    results = report.load() if RAN else []
    if results:
        terminalreporter.section("chaos results")
        terminalreporter.write_line(report.heading(results))
        terminalreporter.write_line(report.table(results))
