"""Where a benchmark's CPU went: the servers' processes by the user they run as, and the machine's busy time."""

from __future__ import annotations

import time

import asyncpg
import pytest

from bench.harness import machine_busy_seconds, servers_cpu_seconds


def _burn(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


def test_the_machines_busy_time_counts_this_processs_work() -> None:
    before = machine_busy_seconds()
    _burn(0.5)
    # Other processes only add to it; the clock ticks in hundredths.
    assert machine_busy_seconds() - before >= 0.4


@pytest.mark.integration
async def test_a_query_counts_as_postgresqls_cpu_not_rabbitmqs(database_url: str) -> None:
    connection = await asyncpg.connect(database_url)  # its backend exists before the first reading
    try:
        before = servers_cpu_seconds()
        started = time.perf_counter()
        await connection.fetchval("SELECT count(*) FROM generate_series(1, 20000000)")
        took = time.perf_counter() - started
        after = servers_cpu_seconds()
    finally:
        await connection.close()

    # The backend was on a core for most of the query's time; RabbitMQ idles meanwhile, far below it.
    postgresql = after["postgresql"] - before["postgresql"]
    assert postgresql >= 0.3 * took
    assert after["rabbitmq"] - before["rabbitmq"] < postgresql
