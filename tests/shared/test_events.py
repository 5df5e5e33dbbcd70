"""The event codec: every payload survives the wire, and every broken body becomes one UndecodableEvent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.domain import Style, Tier
from shared.events import (
    CONTRACT_VERSION,
    PAYLOADS,
    ApiHeartbeat,
    ApiStopped,
    EventType,
    JobCanceled,
    JobFailed,
    JobQueued,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    Payload,
    ProcessUsage,
    RouteTraffic,
    UndecodableEvent,
    WebhookDelivery,
    WorkerHeartbeat,
    WorkerStopped,
    decode,
    encode,
    make_event,
)

QUEUED_AT = datetime(2026, 11, 29, 9, 30, 15, 123456, tzinfo=UTC)
SAMPLES: dict[EventType, Payload] = {
    EventType.JOB_QUEUED: JobQueued(
        asset_id=uuid.uuid4(), tier=Tier.PREMIUM, style=Style.DUSK, prompt="Warmer, « s'il vous plaît » 🌅", attempt=2
    ),
    EventType.JOB_STARTED: JobStarted(worker_id="w-1", tier=Tier.FREE, attempt=1, queued_at=QUEUED_AT),
    EventType.JOB_SUCCEEDED: JobSucceeded(
        worker_id="w-1",
        tier=Tier.PREMIUM,
        attempt=1,
        output_key="job.jpg",
        width=1536,
        height=1024,
        cost=Decimal("0.042000"),
        engine="local",
        processing_ms=812.5,
        queued_at=QUEUED_AT,
    ),
    EventType.JOB_FAILED: JobFailed(
        worker_id=None,
        tier=Tier.FREE,
        attempt=3,
        error_code="corrupt_image",
        error_message="truncated",
        queued_at=QUEUED_AT,
    ),
    EventType.JOB_RETRYING: JobRetrying(
        worker_id="w-2", tier=Tier.FREE, attempt=1, delay_ms=1100, error_code="engine_timeout", error_message="slow"
    ),
    EventType.JOB_CANCELED: JobCanceled(tier=Tier.PREMIUM),
    EventType.WORKER_HEARTBEAT: WorkerHeartbeat(
        worker_id="w-1", host="box", started_at=QUEUED_AT, in_flight=2, processed=10, failed=1, interval_s=5.0
    ),
    EventType.WORKER_STOPPED: WorkerStopped(worker_id="w-1", host="box", processed=10, failed=1),
    EventType.API_HEARTBEAT: ApiHeartbeat(
        instance_id="api-1",
        host="box",
        version="1.2.3",
        started_at=QUEUED_AT,
        interval_s=10.0,
        process=ProcessUsage(cpu_seconds=1.5, rss_bytes=80_000_000),
        routes=[RouteTraffic(route="/jobs/{job_id}", statuses={"2xx": 9, "5xx": 1}, latency_sketch="AAAA")],
    ),
    EventType.API_STOPPED: ApiStopped(instance_id="api-1", host="box"),
    EventType.WEBHOOK_DELIVERY: WebhookDelivery(
        webhook_id="msg_1",
        event="job.succeeded",
        url="https://hooks.example.com/luster",
        body='{"type": "job.succeeded", "data": {"note": "« déjà » 🌅"}}',
        api_key_id=uuid.uuid4(),
        attempt=3,
    ),
}


def test_there_is_a_sample_of_every_event_type() -> None:
    assert set(SAMPLES) == set(EventType) == set(PAYLOADS)


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_every_payload_round_trips(event_type: EventType) -> None:
    payload = SAMPLES[event_type]
    job_id = None if event_type.value.startswith(("worker.", "api.")) else uuid.uuid4()
    event = make_event(payload, job_id=job_id)

    decoded, decoded_payload = decode(encode(event))

    assert decoded == event
    assert decoded.type is event_type
    assert decoded.version == CONTRACT_VERSION
    assert decoded.job_id == job_id
    assert type(decoded_payload) is type(payload)
    assert decoded_payload == payload


def test_the_envelope_is_the_documented_json() -> None:
    job_id = uuid.uuid4()
    event = make_event(SAMPLES[EventType.JOB_CANCELED], job_id=job_id)

    body = json.loads(encode(event))

    assert set(body) == {"id", "type", "version", "occurred_at", "job_id", "data"}
    assert (body["type"], body["version"], body["job_id"], body["data"]) == (
        "job.canceled",
        1,
        str(job_id),
        {"tier": "premium"},
    )
    assert uuid.UUID(body["id"]) == event.id
    assert datetime.fromisoformat(body["occurred_at"]).tzinfo is not None


def _body(**changes: Any) -> bytes:
    envelope = json.loads(encode(make_event(SAMPLES[EventType.JOB_STARTED], job_id=uuid.uuid4())))
    for key, value in changes.items():
        if value is ...:
            envelope.pop(key)
        else:
            envelope[key] = value
    return json.dumps(envelope).encode()


def _data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode(make_event(SAMPLES[EventType.JOB_STARTED])))["data"]
    for key, value in changes.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    return data


BROKEN: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"definitely not json", "invalid envelope"),
    "empty body": (b"", "invalid envelope"),
    "not UTF-8": (b"\xff\xfe\x00garbage", "invalid envelope"),
    "JSON array": (b"[1, 2, 3]", "invalid envelope"),
    "JSON null": (b"null", "invalid envelope"),
    "unknown type": (_body(type="job.exploded"), "type"),
    "wrong version": (_body(version=2), "version 2"),
    "version zero": (_body(version=0), "version 0"),
    "missing type": (_body(type=...), "type"),
    "missing data": (_body(data=...), "data"),
    "missing id": (_body(id=...), "id"),
    "missing version": (_body(version=...), "version"),
    "missing occurred_at": (_body(occurred_at=...), "occurred_at"),
    "missing job_id": (_body(job_id=...), "job_id"),
    "bad event id": (_body(id="42"), "id"),
    "bad job id": (_body(job_id="job-1"), "job_id"),
    "extra envelope field": (_body(priority=9), "priority"),
    "data not an object": (_body(data=[1]), "data"),
    "missing data field": (_body(data=_data(worker_id=...)), "worker_id"),
    "wrong data type": (_body(data=_data(attempt="first")), "attempt"),
    "unknown tier in data": (_body(data=_data(tier="gold")), "tier"),
    "extra data field": (_body(data=_data(colour="red")), "colour"),
    "data of another type": (_body(type="job.canceled"), "job.canceled"),
}


@pytest.mark.parametrize(("body", "mentions"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_bodies_are_undecodable_with_a_reason(body: bytes, mentions: str) -> None:
    with pytest.raises(UndecodableEvent) as caught:
        decode(body)

    assert mentions in caught.value.reason
    assert str(caught.value) == caught.value.reason


def test_a_hand_written_body_of_the_documented_shape_decodes() -> None:
    body = (
        b'{"id": "0b6f4d4e-8f1e-4a1a-9a57-1f0e6d1c2b3a", "type": "job.canceled", "version": 1,'
        b' "occurred_at": "2026-11-29T10:00:00Z", "job_id": "5d1c9d0e-3c2b-4b6a-8f7e-9a0b1c2d3e4f",'
        b' "data": {"tier": "free"}}'
    )

    event, payload = decode(body)

    assert (event.type, event.version) == (EventType.JOB_CANCELED, 1)
    assert event.id == uuid.UUID("0b6f4d4e-8f1e-4a1a-9a57-1f0e6d1c2b3a")
    assert event.occurred_at == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert payload == JobCanceled(tier=Tier.FREE)
