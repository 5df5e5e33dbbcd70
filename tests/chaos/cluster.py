"""The local failover cluster of `scripts/cluster.sh`: three RabbitMQ nodes and a synchronous PostgreSQL pair.

Failover tests kill, stop and start these nodes and promote the standby; none of it touches the machine's
own RabbitMQ (rabbit@localhost, 5672) or PostgreSQL (15/main, 5432): every command names our node or cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.chaos.servers import ServerControlError, run_command
from tests.harness.poll import poll
from tests.harness.procs import alive

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster.sh"
BASE = Path(os.environ.get("LUSTER_CLUSTER_DIR", "/var/tmp/luster-cluster"))
RABBIT_HOST = os.environ.get("LUSTER_RABBIT_HOST", "localhost")
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the real scripts, not /usr/sbin's wrapper (it logs to the machine's node)
RABBIT_HOME = "/var/lib/rabbitmq"  # its .erlang.cookie is shared by our nodes and every CLI call
# The newest installed major version, as scripts/cluster.sh picks it (15 where none is installed yet: the
# suite is collected before `make services` may install PostgreSQL on a fresh machine).
PG_VERSION = max(
    (p.name for p in Path("/etc/postgresql").glob("*")), key=lambda v: [int(x) for x in v.split(".")], default="15"
)
PG_PRIMARY, PG_STANDBY = "luster_primary", "luster_standby"
PG_PRIMARY_PORT, PG_STANDBY_PORT = 5442, 5443
START_LIMIT_S = 180.0  # the whole cluster from nothing takes about 30 s on 2 cores
NODE_WAIT_S = 90.0
POLL_S = 0.5

AMQP_URLS: tuple[str, ...] = tuple(f"amqp://guest:guest@127.0.0.1:{port}/" for port in (5681, 5682, 5683))
DATABASE_URL = (
    f"postgresql://postgres@127.0.0.1:{PG_PRIMARY_PORT},127.0.0.1:{PG_STANDBY_PORT}/luster"
    "?target_session_attrs=read-write"
)


def _as_rabbitmq(*argv: str) -> tuple[str, ...]:
    """A command as the rabbitmq user with its HOME: the nodes' Erlang cookie is in /var/lib/rabbitmq."""
    command = ("env", f"HOME={RABBIT_HOME}", *argv)
    return ("runuser", "-u", "rabbitmq", "--", *command) if os.geteuid() == 0 else command


async def _rabbitmqctl(node: str, *args: str, limit_s: float = 60.0) -> str:
    return await run_command(*_as_rabbitmq(str(RABBIT_BIN / "rabbitmqctl"), "-n", node, "-q", *args), limit_s=limit_s)


async def ensure_cluster() -> None:
    """Start whatever part of the cluster is not running (nothing when all of it is healthy)."""
    await run_command(str(SCRIPT), "start", limit_s=START_LIMIT_S)


async def is_healthy() -> bool:
    """Every node and both database servers up, the standby synchronous (`scripts/cluster.sh status`)."""
    try:
        await run_command(str(SCRIPT), "status", limit_s=60)
    except ServerControlError:
        return False
    return True


async def stop_cluster() -> None:
    """Stop and remove all of it, as `make cluster-stop` does."""
    await run_command(str(SCRIPT), "stop", limit_s=START_LIMIT_S)


async def reset_database() -> None:
    """Rebuild the PostgreSQL pair from scratch: a primary with a synchronous standby again, after a promotion."""
    await run_command(str(SCRIPT), "pg-reset", limit_s=START_LIMIT_S)


# ------------------------------------------------------------------------------------------------ RabbitMQ


@dataclass(frozen=True)
class RabbitNode:
    name: str  # luster-rabbit-N@host
    amqp_port: int

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def directory(self) -> Path:
        return BASE / self.name.partition("@")[0]

    @property
    def env_file(self) -> Path:
        return self.directory / "rabbitmq-env.conf"

    async def is_running(self) -> bool:
        """The node answers and its rabbit application runs (a stop_app'ed or paused node does not)."""
        try:
            answer = await _rabbitmqctl(self.name, "eval", "rabbit:is_running().", limit_s=20)
        except ServerControlError:
            return False
        return answer.strip() == "true"

    async def os_pid(self) -> int | None:
        """The node's beam.smp: from its pid file, checked against the process's own environment.

        The command line of a 3.10 node does not name it, but its environment names our env file; a pid file
        left by a dead node (and a reused pid) fails that check. A node that answers can also tell its pid.
        """
        pid = self._pid_from_file()
        if pid is not None:
            return pid
        with contextlib.suppress(ServerControlError, ValueError):
            return int((await _rabbitmqctl(self.name, "eval", "os:getpid().", limit_s=20)).strip().strip('"'))
        return None

    def _pid_from_file(self) -> int | None:
        """The pid in the node's pid file, when that process runs with this node's environment file."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.directory / "pid").read_text().strip())
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"RABBITMQ_CONF_ENV_FILE={self.env_file}".encode() in environ and alive(pid):
                return pid
        return None

    async def kill(self) -> None:
        """SIGKILL the node's Erlang VM: a crash, with no goodbye to its peers."""
        pid = await self.os_pid()
        if pid is None:
            raise ServerControlError(f"{self.name}: no running beam.smp to kill")
        os.kill(pid, signal.SIGKILL)
        await poll(lambda: _gone(pid), within=30, every=0.1, what=f"{self.name} (pid {pid}) to die")

    async def stop(self) -> None:
        """A clean stop of the whole node (the VM exits)."""
        pid = await self.os_pid()
        await _rabbitmqctl(self.name, "stop", limit_s=NODE_WAIT_S)
        if pid is not None:
            await poll(lambda: _gone(pid), within=NODE_WAIT_S, every=POLL_S, what=f"{self.name} (pid {pid}) to exit")

    async def start(self) -> None:
        """Start the node again from its data; it is done once it runs and is back in the cluster."""
        if not self.env_file.exists():
            raise ServerControlError(f"{self.name} was never set up: run scripts/cluster.sh start")
        await run_command(
            *_as_rabbitmq(f"RABBITMQ_CONF_ENV_FILE={self.env_file}", str(RABBIT_BIN / "rabbitmq-server"), "-detached"),
            limit_s=60,
        )
        # -detached returns before the VM registers with epmd, and await_startup gives up at once on a node
        # epmd does not know yet: ask it again until it answers and has booted.
        await poll(self._started, within=NODE_WAIT_S, every=POLL_S, what=f"{self.name} to start")
        await poll(self._rejoined, within=NODE_WAIT_S, every=POLL_S, what=f"{self.name} to rejoin the cluster")

    async def _started(self) -> bool:
        try:
            await _rabbitmqctl(self.name, "await_startup", "--timeout", "10", limit_s=30)
        except ServerControlError:
            return False
        return True

    async def _rejoined(self) -> bool:
        """It and another running node both list it among the cluster's running nodes."""
        try:
            if self.name not in await _running_nodes(self):
                return False
        except ServerControlError:
            return False
        for node in NODES:
            if node != self:
                with contextlib.suppress(ServerControlError):
                    if self.name in await _running_nodes(node):
                        return True
        return False


async def _gone(pid: int) -> bool:
    return not alive(pid)


NODES: tuple[RabbitNode, ...] = tuple(RabbitNode(f"luster-rabbit-{n}@{RABBIT_HOST}", 5680 + n) for n in (1, 2, 3))


async def _running_nodes(node: RabbitNode) -> set[str]:
    status = json.loads(await _rabbitmqctl(node.name, "cluster_status", "--formatter", "json", limit_s=30))
    return set(status["running_nodes"])


async def running_node() -> RabbitNode:
    """A node to ask: the first that runs."""

    async def first() -> RabbitNode | None:
        for node in NODES:
            if await node.is_running():
                return node
        return None

    found: RabbitNode | None = await poll(first, within=NODE_WAIT_S, every=POLL_S, what="any cluster node to run")
    assert found is not None  # poll returns only something true
    return found


async def _queue_info(queue: str, vhost: str) -> dict[str, Any]:
    node = await running_node()
    listing = await _rabbitmqctl(
        node.name, "list_queues", "-p", vhost, "name", "type", "leader", "members", "--formatter", "json"
    )
    for info in json.loads(listing):
        if info["name"] == queue:
            return dict(info)
    raise ServerControlError(f"no queue {queue!r} in vhost {vhost!r} (asked {node.name})")


async def queue_leader(queue: str, vhost: str = "/") -> RabbitNode:
    """The node that leads a quorum queue (waiting through an election, when one is under way)."""
    by_name = {node.name: node for node in NODES}

    async def leader() -> RabbitNode | None:
        return by_name.get(str((await _queue_info(queue, vhost)).get("leader") or ""))

    found: RabbitNode | None = await poll(
        leader, within=NODE_WAIT_S, every=POLL_S, what=f"a leader of quorum queue {queue!r}"
    )
    assert found is not None  # poll returns only something true
    return found


async def queue_members(queue: str, vhost: str = "/") -> set[str]:
    """The node names of a quorum queue's replicas."""
    return {str(member) for member in (await _queue_info(queue, vhost)).get("members") or ()}


# ---------------------------------------------------------------------------------------------- PostgreSQL


def _pg_ctlcluster(name: str, *args: str) -> tuple[str, ...]:
    return ("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, name, *args)


async def _fetchval(port: int, sql: str) -> Any:
    connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=5)
    try:
        return await connection.fetchval(sql, timeout=10)
    finally:
        await connection.close(timeout=5)


async def stop_primary(mode: str = "fast") -> None:
    """Stop the primary (smart, fast or immediate: immediate is a crash without a shutdown checkpoint)."""
    await run_command(*_pg_ctlcluster(PG_PRIMARY, "stop", "-m", mode), limit_s=120)


async def promote_standby() -> None:
    """Promote the standby, and wait until it takes writes."""
    await run_command(*_pg_ctlcluster(PG_STANDBY, "promote"), limit_s=120)

    async def promoted() -> bool:
        try:
            return await _fetchval(PG_STANDBY_PORT, "SELECT pg_is_in_recovery()") is False
        except (OSError, asyncpg.PostgresError):
            return False

    await poll(promoted, within=60, every=POLL_S, what=f"{PG_STANDBY} to leave recovery")


async def sync_state() -> str | None:
    """The standby's sync_state as the primary reports it (`sync`), or None when it is not connected."""
    state = await _fetchval(
        PG_PRIMARY_PORT, f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{PG_STANDBY}'"
    )
    return None if state is None else str(state)
