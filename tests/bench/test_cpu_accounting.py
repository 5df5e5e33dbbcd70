"""Where a benchmark's CPU went: the servers' processes by the user they run as, and the machine's busy time."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import asyncpg
import pytest

from bench.harness import cpu_seconds, machine_busy_seconds, servers_cpu_seconds, tree_cpu_seconds

# A child that burns half a second of CPU, says so, then waits for its stdin to close.
_BURNING_CHILD = """
import sys, time
started = time.process_time()
while time.process_time() - started < 0.5:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


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
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        before, backend_before = servers_cpu_seconds(), cpu_seconds(backend)
        await connection.fetchval("SELECT count(*) FROM generate_series(1, 20000000)")
        after, backend_used = servers_cpu_seconds(), cpu_seconds(backend) - backend_before
    finally:
        await connection.close()

    # PostgreSQL's count holds its backend's own CPU (read in between, so to within a clock tick); RabbitMQ
    # idles meanwhile, far below it.
    postgresql = after["postgresql"] - before["postgresql"]
    assert backend_used > 0.1
    assert postgresql >= backend_used - 0.02
    assert after["rabbitmq"] - before["rabbitmq"] < postgresql


def test_a_process_trees_cpu_counts_its_childrens() -> None:
    own_before, tree_before = cpu_seconds(os.getpid()), tree_cpu_seconds(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", _BURNING_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        tree_used, own_used = tree_cpu_seconds(os.getpid()) - tree_before, cpu_seconds(os.getpid()) - own_before
    finally:
        child.communicate("")
    # The child's half second (and its interpreter's start-up) is in the tree's count, not in this process's.
    assert tree_used - own_used >= 0.45
