"""One job is one trace across the api, the worker and the monitor, running as separate processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.poll import poll
from tests.system import processes
from tests.system.conftest import submit_job, wait_for_status
from tests.system.receivers import ExportedSpan, OtlpReceiver, otlp_receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICES = {"luster-api", "luster-worker", "luster-monitor"}
SPAN_KIND_SERVER, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = 2, 4, 5


async def _wait_for_trace(receiver: OtlpReceiver, trace_id: str, deadline_s: float = 30.0) -> list[ExportedSpan]:
    """Until the trace holds spans of all three services and the monitor consumed the job's outcome."""

    async def complete() -> list[ExportedSpan]:
        spans = receiver.in_trace(trace_id)
        consumed = {
            s.attributes.get("messaging.rabbitmq.destination.routing_key")
            for s in spans
            if s.service == "luster-monitor"
        }
        # A parent span ends (and is exported) after its children: wait for the last exports too.
        ids = {s.span_id for s in spans}
        ended = all(not s.parent_span_id or s.parent_span_id in ids for s in spans)
        return spans if {s.service for s in spans} >= SERVICES and "job.succeeded" in consumed and ended else []

    def found() -> str:
        return f"trace {trace_id} to complete: {sorted((s.service, s.name) for s in receiver.in_trace(trace_id))}"

    return await poll(complete, within=deadline_s, every=0.3, what=found)


def _one(spans: list[ExportedSpan], service: str, name_part: str) -> ExportedSpan:
    matches = [s for s in spans if s.service == service and name_part in s.name]
    assert matches, f"no {service} span named like {name_part!r} in {sorted((s.service, s.name) for s in spans)}"
    return matches[0]


async def test_one_job_is_one_trace_across_three_processes(
    service_env: dict[str, str], log_dir: Path, photo: bytes, api_key: dict[str, str]
) -> None:
    async with otlp_receiver() as receiver:
        env = {
            **service_env,
            "OTLP_ENDPOINT": receiver.url,
            "OTLP_HEADERS": "Authorization=Bearer test-token",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "APP_VERSION": "9.9.9",
            "ENVIRONMENT": "tracing-test",
            "ADMIN_PASSWORD": "tracing-secret",
            "HEARTBEAT_INTERVAL": "1",
        }
        api = processes.start("api", env, log_dir, port=processes.free_port())
        worker = processes.start("worker", env, log_dir)
        monitor = processes.start("monitor", env, log_dir, port=processes.free_port())
        try:
            await processes.wait_healthy(api)
            await processes.wait_healthy(monitor)
            job = await submit_job(api.url, photo, api_key)
            done = await wait_for_status(api.url, job["id"], {"succeeded", "failed"}, headers=api_key)
            assert done["status"] == "succeeded", done
            trace_id = done["trace_id"]
            assert trace_id and len(trace_id) == 32
            spans = await _wait_for_trace(receiver, trace_id)
        finally:
            codes = {service.name: service.stop() for service in (api, worker, monitor)}
        assert codes == {"api": 0, "worker": 0, "monitor": 0}, codes

    # Every span's parent was exported too: the trace has no holes.
    ids = {span.span_id for span in spans}
    roots = [span for span in spans if not span.parent_span_id]
    assert len(roots) == 1 and roots[0].kind == SPAN_KIND_SERVER and roots[0].service == "luster-api"
    orphans = [(s.service, s.name) for s in spans if s.parent_span_id and s.parent_span_id not in ids]
    assert orphans == []

    server = roots[0]
    assert server.attributes["http.route"] == "/jobs"
    assert server.attributes["resource"]["service.version"] == "9.9.9"
    assert server.attributes["resource"]["deployment.environment"] == "tracing-test"
    assert any(s.parent_span_id == server.span_id and s.attributes.get("db.system") == "postgresql" for s in spans)

    publish = _one(spans, "luster-api", "publish job.queued")
    assert publish.kind == SPAN_KIND_PRODUCER
    assert publish.attributes["messaging.system"] == "rabbitmq"
    assert publish.attributes["messaging.destination.name"].endswith(".events")

    consume = _one(spans, "luster-worker", "process")
    assert consume.kind == SPAN_KIND_CONSUMER and consume.parent_span_id == publish.span_id

    engine = _one(spans, "luster-worker", "engine enhance")
    assert engine.attributes["luster.tier"] == "premium"
    assert engine.attributes["luster.style"] == "default"
    assert engine.attributes["luster.engine"] == "local"
    assert engine.attributes["luster.output_width"] == 1536
    assert engine.attributes["luster.duration_ms"] > 0
    _one(spans, "luster-worker", "storage put")
    succeeded = _one(spans, "luster-worker", "publish job.succeeded")
    monitor_consume = [s for s in spans if s.service == "luster-monitor" and s.parent_span_id == succeeded.span_id]
    assert monitor_consume and monitor_consume[0].kind == SPAN_KIND_CONSUMER
    assert receiver.authorization and set(receiver.authorization) == {"Bearer test-token"}
