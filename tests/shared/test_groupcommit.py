"""Group commit: changes under way together share one transaction, and no change pays for another's failure."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest

from shared import outbox
from shared.broker import Broker, event_message
from shared.db import DATABASE_DOWN_ERRORS, create_pool
from shared.domain import Tier
from shared.events import JobCanceled, make_event
from shared.groupcommit import Change, GroupCommit
from shared.messages import OutgoingMessage
from shared.outbox import Outbox
from tests.harness.poll import poll

pytestmark = pytest.mark.integration

PROBE = "groupcommit_probe"


@pytest.fixture
async def probe(pool: asyncpg.Pool) -> AsyncIterator[str]:
    """A table of the changes' own rows; its key's uniqueness is checked at COMMIT, so a group can be refused."""
    await pool.execute(
        f"CREATE TABLE {PROBE} (key text, txid bigint, CONSTRAINT one_each UNIQUE (key) DEFERRABLE INITIALLY DEFERRED)"
    )
    yield PROBE
    await pool.execute(f"DROP TABLE {PROBE}")


class Changes:
    """Changes that write a probe row and stage an event, counting how often each ran and in which transaction."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.runs: Counter[str] = Counter()
        self.txids: dict[str, list[int]] = {}
        self.message_ids: dict[str, list[str]] = {}

    def writing(self, key: str, *, fail: bool = False, hold: asyncio.Event | None = None) -> Change[str]:
        async def change(box: Outbox) -> str:
            self.runs[key] += 1
            txid = await box.connection.fetchval(
                f"INSERT INTO {PROBE} (key, txid) VALUES ($1, txid_current()) RETURNING txid", key
            )
            self.txids.setdefault(key, []).append(int(txid))
            if hold is not None:
                await hold.wait()
            if fail:
                await box.connection.execute("SELECT 1 / 0")
            ids = []
            for _ in range(2):
                event = make_event(JobCanceled(tier=Tier.FREE))
                ids.append(str(event.id))
                await box.stage(event_message(event, exchange=self.broker.topology.events_exchange, routing_key=key))
            self.message_ids[key] = ids
            return key

        return change


async def _tap(broker: Broker, *keys: str) -> aio_pika.abc.AbstractQueue:
    channel = await broker.connection.channel()
    exchange = await channel.get_exchange(broker.topology.events_exchange)
    queue = await channel.declare_queue(exclusive=True)
    for key in keys:
        await queue.bind(exchange, key)
    return queue


async def _keys(pool: asyncpg.Pool) -> Counter[str]:
    return Counter(record["key"] for record in await pool.fetch(f"SELECT key FROM {PROBE}"))


async def test_changes_under_way_together_share_one_commit_and_each_publishes_its_own_messages(
    pool: asyncpg.Pool, broker: Broker, probe: str
) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=8)
    keys = [f"change-{n}" for n in range(5)]
    tap = await _tap(broker, *keys)

    assert await asyncio.gather(*(group.run(changes.writing(key)) for key in keys)) == keys
    await group.settle()

    assert len({txid for key in keys for txid in changes.txids[key]}) == 1
    assert changes.runs == dict.fromkeys(keys, 1)
    assert await _keys(pool) == dict.fromkeys(keys, 1)
    published = [str((await tap.get(timeout=5)).message_id) for _ in range(2 * len(keys))]
    assert sorted(published) == sorted(i for key in keys for i in changes.message_ids[key])
    # Each change's messages in the outbox in the order it staged them, and marked published.
    for key in keys:
        rows = await pool.fetch(
            "SELECT message_id FROM outbox WHERE message_id = ANY($1::text[]) ORDER BY id", changes.message_ids[key]
        )
        assert [row["message_id"] for row in rows] == changes.message_ids[key]
    await outbox.settle(pool)
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0


async def test_a_change_returns_without_waiting_for_its_publish_and_settle_waits_for_it(
    pool: asyncpg.Pool, broker: Broker, probe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=8)
    tap = await _tap(broker, "slow")
    confirmed, publish = asyncio.Event(), broker.publish_raw

    async def held_publish(message: OutgoingMessage) -> None:
        await confirmed.wait()  # a broker slow to confirm
        await publish(message)

    monkeypatch.setattr(broker, "publish_raw", held_publish)

    assert await group.run(changes.writing("slow")) == "slow"  # committed, its messages not yet out

    assert await _keys(pool) == {"slow": 1}
    settling = asyncio.create_task(group.settle())
    assert await tap.get(fail=False, timeout=0.5) is None and not settling.done()
    confirmed.set()
    await settling
    published = [str((await tap.get(timeout=5)).message_id) for _ in range(2)]
    assert published == changes.message_ids["slow"]


async def test_a_group_takes_no_more_than_its_largest(pool: asyncpg.Pool, broker: Broker, probe: str) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=2)
    keys = [f"change-{n}" for n in range(5)]

    await asyncio.gather(*(group.run(changes.writing(key)) for key in keys))

    sizes = Counter(changes.txids[key][0] for key in keys)
    assert sorted(sizes.values()) == [1, 2, 2]


async def test_one_changes_failure_is_not_anothers(pool: asyncpg.Pool, broker: Broker, probe: str) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=8)
    tap = await _tap(broker, "good-1", "bad", "good-2")

    outcomes = await asyncio.gather(
        group.run(changes.writing("good-1")),
        group.run(changes.writing("bad", fail=True)),
        group.run(changes.writing("good-2")),
        return_exceptions=True,
    )
    await group.settle()

    assert outcomes[0] == "good-1" and outcomes[2] == "good-2"
    assert isinstance(outcomes[1], asyncpg.DivisionByZeroError)
    # Together, then each alone (what came after the failure in the group did not run in it): the failing
    # change raised alone, the others committed once.
    assert changes.runs == {"good-1": 2, "bad": 2, "good-2": 1}
    assert changes.txids["good-1"][0] == changes.txids["bad"][0]
    assert await _keys(pool) == {"good-1": 1, "good-2": 1}
    published = {(await tap.get(timeout=5)).routing_key for _ in range(4)}
    assert published == {"good-1", "good-2"}
    assert await tap.get(fail=False, timeout=0.5) is None


async def test_a_commit_the_server_refuses_is_tried_again_change_by_change(
    pool: asyncpg.Pool, broker: Broker, probe: str
) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=8)

    outcomes = await asyncio.gather(
        group.run(changes.writing("same")),
        group.run(changes.writing("same")),
        group.run(changes.writing("other")),
        return_exceptions=True,
    )

    # The duplicate key is only found at COMMIT: the group is refused, and alone only the second "same" is.
    assert outcomes[0] == "same" and outcomes[2] == "other"
    assert isinstance(outcomes[1], asyncpg.UniqueViolationError)
    assert await _keys(pool) == {"same": 1, "other": 1}
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 4


async def test_a_lone_change_that_fails_runs_once(pool: asyncpg.Pool, broker: Broker, probe: str) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=8)

    with pytest.raises(asyncpg.DivisionByZeroError):
        await group.run(changes.writing("bad", fail=True))

    assert changes.runs == {"bad": 1}
    assert await _keys(pool) == {}


async def test_a_change_cancelled_before_its_turn_leaves_the_others_to_commit(
    pool: asyncpg.Pool, broker: Broker, probe: str
) -> None:
    changes, group = Changes(broker), GroupCommit(pool, broker, largest=8)
    hold = asyncio.Event()
    first = asyncio.create_task(group.run(changes.writing("first", hold=hold)))
    cancelled = asyncio.create_task(group.run(changes.writing("cancelled")))
    third = asyncio.create_task(group.run(changes.writing("third")))
    await poll(lambda: asyncio.sleep(0, "first" in changes.runs), within=10, what="the first change to run")

    cancelled.cancel()
    hold.set()

    assert await first == "first" and await third == "third"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert "cancelled" not in changes.runs
    assert changes.txids["first"] == changes.txids["third"]
    assert await _keys(pool) == {"first": 1, "third": 1}


class Cuttable:
    """A TCP relay to PostgreSQL whose connections the test can cut, as a network does."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


async def test_a_commit_whose_outcome_is_unknown_is_raised_and_never_run_again(
    pool: asyncpg.Pool, broker: Broker, probe: str, database_url: str
) -> None:
    # A constraint trigger makes COMMIT take a second, long enough to cut the connection while it runs.
    await pool.execute(
        f"""
        CREATE FUNCTION {PROBE}_slow() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON {PROBE} DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION {PROBE}_slow();
        """
    )
    address = urlsplit(database_url)
    relay = Cuttable(address.hostname or "127.0.0.1", address.port or 5432)
    port = await relay.start()
    relayed = await create_pool(
        urlunsplit(
            address._replace(netloc=f"{address.username or 'postgres'}@127.0.0.1:{port}", query="sslmode=disable")
        ),
        min_size=1,
        max_size=2,
    )
    changes, group = Changes(broker), GroupCommit(relayed, broker, largest=8)
    try:
        both = asyncio.gather(group.run(changes.writing("a")), group.run(changes.writing("b")), return_exceptions=True)
        committing = """
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND query LIKE 'COMMIT%' AND wait_event = 'PgSleep'
        """
        await poll(lambda: _positive(pool, committing), within=10, what="the group's COMMIT to be under way")
        relay.cut()
        outcomes = await both
    finally:
        await relay.close()
        relayed.terminate()
        await pool.execute(f"DROP FUNCTION {PROBE}_slow() CASCADE")

    assert all(isinstance(outcome, DATABASE_DOWN_ERRORS) for outcome in outcomes)
    assert changes.runs == {"a": 1, "b": 1}
    # The server committed after all: running the changes again would have applied them twice.
    await poll(lambda: _keys_are(pool, {"a": 1, "b": 1}), within=10, what="the group's COMMIT to finish")


async def _positive(pool: asyncpg.Pool, query: str) -> bool:
    return bool(await pool.fetchval(query))


async def _keys_are(pool: asyncpg.Pool, expected: dict[str, int]) -> bool:
    return await _keys(pool) == expected
