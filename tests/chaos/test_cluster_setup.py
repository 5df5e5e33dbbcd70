"""The local failover cluster (scripts/cluster.sh) is what the failover tests expect of it.

Three RabbitMQ nodes replicate a quorum queue and carry a message from one node to another; the PostgreSQL
standby is synchronous and serves reads of what the primary committed. Nothing here stops a server, so it
needs no chaos lock; it starts the cluster (as root) when it is not running.
"""

from __future__ import annotations

import os
import uuid

import aio_pika
import asyncpg
import pytest
from pamqp.commands import Basic

from tests.chaos import cluster
from tests.harness.poll import poll

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="scripts/cluster.sh starts nodes as rabbitmq and postgres: root only"),
]


async def _check_quorum_queue() -> None:
    queue = f"luster-cluster-setup-{uuid.uuid4().hex[:12]}"
    first = await aio_pika.connect(cluster.NODES[0].amqp_url, timeout=10)
    try:
        declaring = await first.channel()
        await declaring.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        assert await cluster.queue_members(queue) == {node.name for node in cluster.NODES}

        body = uuid.uuid4().bytes
        second = await aio_pika.connect(cluster.NODES[1].amqp_url, timeout=10)
        try:
            publishing = await second.channel(publisher_confirms=True)
            confirmation = await publishing.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue, timeout=10
            )
            assert isinstance(confirmation, Basic.Ack)  # the broker confirmed it: stored on a majority
        finally:
            await second.close()

        third = await aio_pika.connect(cluster.NODES[2].amqp_url, timeout=10)
        try:
            consuming = await third.channel()
            replica = await consuming.get_queue(queue)  # a passive declare: it exists on node 3 too

            async def delivered() -> aio_pika.abc.AbstractIncomingMessage | None:
                return await replica.get(no_ack=False, fail=False, timeout=5)

            message = await poll(delivered, within=30, every=0.2, what="the message on node 3")
            assert message is not None
            assert message.body == body
            await message.ack()
        finally:
            await third.close()
    finally:
        cleaning = await first.channel()
        await cleaning.queue_delete(queue)
        await first.close()


async def _check_replication() -> None:
    assert await cluster.sync_state() == "sync"
    table = f"cluster_setup_{uuid.uuid4().hex[:12]}"
    token = uuid.uuid4().hex
    primary = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.PG_PRIMARY_PORT}/luster", timeout=10)
    standby = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.PG_STANDBY_PORT}/luster", timeout=10)
    try:
        await primary.execute(f"CREATE TABLE {table} (token text)")
        await primary.execute(f"INSERT INTO {table} VALUES ($1)", token)

        # synchronous_commit = on waits for the standby's flush, not its replay: poll until it is visible.
        async def replayed() -> bool:
            try:
                return bool(await standby.fetchval(f"SELECT token FROM {table}") == token)
            except asyncpg.UndefinedTableError:
                return False

        await poll(replayed, within=30, every=0.1, what="the committed row on the standby")
        assert await standby.fetchval("SELECT pg_is_in_recovery()") is True
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await standby.execute(f"INSERT INTO {table} VALUES ('written on the standby')")
    finally:
        await primary.execute(f"DROP TABLE IF EXISTS {table}")
        await standby.close()
        await primary.close()


async def test_cluster_replicates_queues_and_commits(running_cluster: None) -> None:
    """The cluster: a quorum queue on three nodes, and a synchronous PostgreSQL standby that serves reads."""
    await cluster.ensure_cluster()
    await _check_quorum_queue()
    await _check_replication()
