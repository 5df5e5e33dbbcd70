"""Scenarios 17-21: failover on a three-node RabbitMQ cluster and a PostgreSQL primary with a synchronous standby.

The services run against the local cluster of scripts/cluster.sh (`make cluster`), real RabbitMQ nodes and
real PostgreSQL servers on their own ports, never the machine's own servers, so no scenario here needs the
chaos lock. AMQP_URL lists the three nodes, DATABASE_URL both database hosts with
target_session_attrs=read-write. Each scenario runs its load through the fault and reports its recovery:
the seconds from the fault until the first job a worker started after it has finished.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import aiohttp
import pytest

from shared.domain import Tier
from shared.migrate import migrate
from tests.chaos import cluster
from tests.chaos.harness import Chaos
from tests.chaos.load import job_body
from tests.chaos.size import SIZE
from tests.chaos.verdict import TERMINAL

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.timeout(SIZE.timeout() + 900),
    pytest.mark.skipif(os.geteuid() != 0, reason="scripts/cluster.sh starts nodes as rabbitmq and postgres: root only"),
]

WATCHDOG_EXIT = 1  # a service whose consumers did not come back exits non-zero for its platform to restart it
DATABASE = "luster_failover"


@pytest.fixture
def amqp_url(running_cluster: None) -> str:
    return ",".join(cluster.AMQP_URLS)


@pytest.fixture
def database_url(running_cluster: None) -> str:
    """A database on a healthy pair (a failover leaves the standby promoted: `start` rebuilds the pair)."""
    asyncio.run(cluster.ensure_cluster())
    dsn = cluster.DATABASE_URL.replace("/luster?", f"/{DATABASE}?")
    migrate(dsn)
    return dsn


async def _recovery(chaos: Chaos, fault_at: float) -> float | None:
    """Seconds from `fault_at` until the first job started after it finished: the fleet works again."""
    finished_at = await chaos.query(
        """
        SELECT extract(epoch FROM min(done.created_at))
        FROM job_events done
        JOIN job_events began ON began.job_id = done.job_id AND began.to_status = 'processing'
        WHERE done.to_status = ANY($2::text[]) AND began.created_at > to_timestamp($1)
        """,
        fault_at,
        TERMINAL,
    )
    return None if finished_at is None else round(float(finished_at) - fault_at, 2)


async def _report_recovery(chaos: Chaos, fault_at: float, what: str) -> None:
    chaos.result.recover_s = await _recovery(chaos, fault_at)
    restarts = sum(1 for exit_ in chaos.stack.exits if exit_.cause == "died")
    chaos.note(f"jobs completing again {chaos.result.recover_s} s after {what}, {restarts} service restarts")
    chaos.expect(chaos.result.recover_s is not None, f"no job started after {what} finished")


async def _consumers_back(chaos: Chaos) -> None:
    try:
        await chaos.workers_consuming(len([w for w in chaos.workers if not w.held]), deadline_s=180)
        await chaos.until("the monitor's consumer", chaos.monitor_consuming, deadline_s=120)
    except AssertionError as error:
        chaos.expect(False, f"consumers did not come back: {error}")


async def _replicated_on_every_node(chaos: Chaos) -> None:
    """After a node's return, the work and dead-letter queues have their three replicas again."""
    every = {node.name for node in cluster.NODES}
    for queue in [*(chaos.topology.work_queue(tier) for tier in Tier), chaos.topology.dead_letter_queue]:
        members = await cluster.queue_members(queue)
        chaos.expect(members == every, f"{queue} is on {sorted(members)}, not all three")


def _only_accepted_or_unavailable(chaos: Chaos) -> None:
    unexpected = {outcome: n for outcome, n in chaos.client.ledger.outcomes.items() if outcome not in ("202", "503")}
    chaos.expect(not unexpected, f"answers other than 202 and 503: {unexpected}")


async def _back_and_settled(chaos: Chaos, node: cluster.RabbitNode, *, fault_at: float, fault: str) -> None:
    """The node started again, then: consumers back, every job terminal, three replicas, the verdict."""
    await node.start()
    chaos.fault_over(f"{node.name} rejoined")
    await _consumers_back(chaos)
    await chaos.drain()
    await _replicated_on_every_node(chaos)
    await chaos.finish()
    await _report_recovery(chaos, fault_at, fault)
    _only_accepted_or_unavailable(chaos)
    chaos.conclude()


async def _unavailable_until_promoted(chaos: Chaos) -> None:
    """With the primary down and the standby not yet promoted (no host takes writes), a submission and a
    status read both answer 503 with the JSON error, never 500."""
    assert chaos.client.asset_id is not None
    async with aiohttp.ClientSession(headers=chaos.client.headers) as session:
        async with session.post(f"{chaos.client.base_url}/jobs", json=job_body(0, chaos.client.asset_id)) as posted:
            answers = [(posted.status, await posted.json())]
        async with session.get(f"{chaos.client.base_url}/jobs/{uuid.uuid4()}") as read:
            answers.append((read.status, await read.json()))
    for status, body in answers:
        chaos.expect(
            status == 503 and body["error"]["code"] == "dependency_unavailable",
            f"while no host took writes: {status} {body}",
        )


async def _under_load(chaos: Chaos, jobs: int, *, over_s: float, file_share: float = 0.0) -> None:
    """The api, the monitor and two workers on the cluster, and `jobs` submissions spread over `over_s`."""
    await chaos.start(workers=2)
    chaos.submit(jobs, over_s=over_s, file_share=file_share)


def _load_through_the_outage(chaos: Chaos, jobs: int, *, outage_s: float) -> None:
    """More submissions, spread over the outage that begins now: jobs that can start only after the fault,
    so the recovery has jobs to measure however fast the fleet ran through the first load before it."""
    chaos.submit(max(1, jobs // 5), over_s=outage_s)


async def test_leader_node_killed_under_load(chaos: Chaos, jobs: int) -> None:
    """17. The RabbitMQ node leading the work queues SIGKILLed under load, then back."""
    chaos.expected_exit_codes.add(WATCHDOG_EXIT)
    await _under_load(chaos, jobs, over_s=chaos.size.scaled(12, 40))
    await chaos.accepted_at_least(jobs // 4)
    leader = await cluster.queue_leader(chaos.topology.work_queue(Tier.FREE))
    fault_at = chaos.fault(f"SIGKILL {leader.name}")
    await leader.kill()
    _load_through_the_outage(chaos, jobs, outage_s=chaos.size.scaled(4, 10))
    await chaos.finished_at_least(jobs // 2)
    await _back_and_settled(chaos, leader, fault_at=fault_at, fault="the kill")


async def test_node_stopped_cleanly_and_back_while_workers_consume(chaos: Chaos, jobs: int) -> None:
    """18. One RabbitMQ node stopped cleanly and brought back while workers consume."""
    chaos.expected_exit_codes.add(WATCHDOG_EXIT)
    await _under_load(chaos, jobs, over_s=chaos.size.scaled(6, 20))
    await chaos.finished_at_least(jobs // 4)
    node = await cluster.queue_leader(chaos.topology.work_queue(Tier.PREMIUM))
    fault_at = chaos.fault(f"rabbitmqctl stop {node.name}")
    await node.stop()
    outage_s = chaos.size.scaled(4, 10)
    _load_through_the_outage(chaos, jobs, outage_s=outage_s)
    await asyncio.sleep(outage_s)  # the outage lasts this long, whatever the load does meanwhile
    await _back_and_settled(chaos, node, fault_at=fault_at, fault="the stop")


async def test_two_nodes_of_three_down(chaos: Chaos, jobs: int) -> None:
    """19. Two RabbitMQ nodes of three down for a while: the queues lose their majority, then regain it."""
    chaos.expected_exit_codes.add(WATCHDOG_EXIT)
    await _under_load(chaos, jobs, over_s=chaos.size.scaled(16, 50))
    await chaos.accepted_at_least(jobs // 4)
    first, second = cluster.NODES[1], cluster.NODES[2]
    chaos.fault(f"rabbitmqctl stop {first.name}, then {second.name}")
    await first.stop()
    await second.stop()
    before = len(chaos.client.ledger.accepted)
    outage_s = chaos.size.scaled(6, 15)
    _load_through_the_outage(chaos, jobs, outage_s=outage_s)
    await asyncio.sleep(outage_s)  # the survivor pauses itself (pause_minority): no broker at all
    during = len(chaos.client.ledger.accepted) - before
    returned_at = time.time()
    await second.start()  # the last to stop comes back first: its view of the cluster is the newest
    chaos.fault_over(f"{second.name} back: a majority again")
    await first.start()
    await _consumers_back(chaos)
    await chaos.drain()
    await _replicated_on_every_node(chaos)
    await chaos.finish()
    await _report_recovery(chaos, returned_at, "the majority's return")
    chaos.note(f"{during} accepted and held while the majority was lost, {chaos.client.ledger.count('503')} 503s")
    _only_accepted_or_unavailable(chaos)
    chaos.conclude()


async def test_primary_stopped_and_standby_promoted(chaos: Chaos, jobs: int) -> None:
    """20. The PostgreSQL primary stopped under load and its synchronous standby promoted."""
    # No exit is expected: every service finds the new primary through DATABASE_URL, without a restart.
    await _under_load(chaos, jobs, over_s=chaos.size.scaled(12, 40), file_share=0.25)
    await chaos.accepted_at_least(jobs // 4)
    chaos.expect(await cluster.sync_state() == "sync", "the standby was not synchronous before the failover")
    fault_at = chaos.fault("pg_ctlcluster stop (the primary)")
    await cluster.stop_primary()
    await _unavailable_until_promoted(chaos)
    await cluster.promote_standby()
    chaos.fault_over("the standby promoted")
    await chaos.drain()
    await chaos.finish()
    await _report_recovery(chaos, fault_at, "the primary's stop")
    chaos.note(f"{chaos.client.ledger.count('503')} answered 503 during the switch")
    _only_accepted_or_unavailable(chaos)
    chaos.conclude()


async def test_broker_node_killed_while_the_database_fails_over(chaos: Chaos, jobs: int) -> None:
    """21. A RabbitMQ node SIGKILLed while the PostgreSQL primary fails over to its standby."""
    chaos.expected_exit_codes.add(WATCHDOG_EXIT)
    await _under_load(chaos, jobs, over_s=chaos.size.scaled(12, 40))
    await chaos.accepted_at_least(jobs // 4)
    leader = await cluster.queue_leader(chaos.topology.work_queue(Tier.PREMIUM))
    fault_at = chaos.fault(f"SIGKILL {leader.name} and pg_ctlcluster stop (the primary)")
    await asyncio.gather(leader.kill(), cluster.stop_primary())
    _load_through_the_outage(chaos, jobs, outage_s=chaos.size.scaled(4, 10))
    await cluster.promote_standby()
    await chaos.finished_at_least(jobs // 2)
    await _back_and_settled(chaos, leader, fault_at=fault_at, fault="the faults")
