"""Reading dead letters: ours (x-luster-* headers) and the broker's own (x-death)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.monitor.broker.deadletter import describe, key_of, revived_headers
from shared.topology import DELIVERY_LIMIT


def test_a_message_we_dead_lettered() -> None:
    body = json.dumps({"id": "e1", "type": "job.queued", "job_id": "j1", "data": {"attempt": 2}}).encode()
    headers = {
        "x-luster-reason": "gave up after 3 attempts",
        "x-luster-queue": "luster.jobs.free",
        "x-luster-dead-lettered-at": 1_800_000_000,
        "traceparent": "00-abc-def-01",
        "x-delivery-count": 4,
    }
    letter = describe(body, headers, "e1")
    assert (letter.key, letter.event_type, letter.job_id) == ("e1", "job.queued", "j1")
    assert (letter.reason, letter.origin, letter.attempts) == ("gave up after 3 attempts", "luster.jobs.free", 3)
    assert letter.dead_lettered_at == datetime.fromtimestamp(1_800_000_000, UTC)
    assert revived_headers(headers, 5) == {"traceparent": "00-abc-def-01", "x-luster-requeued-at": 5}


def test_a_message_the_broker_dead_lettered_at_its_delivery_limit() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    headers = {
        "x-death": [{"count": 1, "reason": "delivery_limit", "queue": "luster.jobs.premium", "time": when}],
        "x-first-death-reason": "delivery_limit",
    }
    letter = describe(b"{}", headers, "m2")
    assert (letter.origin, letter.dead_lettered_at) == ("luster.jobs.premium", when)
    assert letter.attempts == DELIVERY_LIMIT + 1
    assert letter.reason == "delivery_limit by the broker"
    assert revived_headers(headers, 1) == {"x-luster-requeued-at": 1}


def test_garbage_without_a_message_id() -> None:
    letter = describe(b"\xff not json", {}, None)
    assert letter.key == key_of(b"\xff not json", None) and letter.key.startswith("sha256-")
    assert (letter.origin, letter.reason, letter.attempts, letter.event_type) == (None, "unknown", None, None)
    assert letter.preview.endswith("not json")


def test_an_undeliverable_webhook_counts_its_attempts_from_one() -> None:
    body = json.dumps({"id": "e3", "type": "webhook.delivery", "job_id": "j3", "data": {"attempt": 7}}).encode()
    headers = {"x-luster-reason": "webhook not delivered after 7 attempts", "x-luster-queue": "luster.webhooks"}
    letter = describe(body, headers, "e3")
    assert (letter.event_type, letter.origin, letter.attempts) == ("webhook.delivery", "luster.webhooks", 7)
