"""The api's /metrics: Prometheus' text format behind METRICS_TOKEN, with request metrics labelled by route
template, so no path a client makes up becomes a label value."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app
from services.api.metrics import UNMATCHED, ApiMetrics
from services.api.settings import ApiSettings
from shared.telemetry.metrics import exposition
from tests.conftest import Client
from tests.harness.api import ApiFactory
from tests.harness.scrape import samples, value

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-for-tests"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def scrape(client: Client, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return await response.text()


async def test_metrics_are_open_without_a_token_outside_production(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings
) -> None:
    anonymous = await aiohttp_client(create_app(api_settings))

    text = await scrape(anonymous)

    assert value(text, "luster_build_info", service="api", version=api_settings.app_version) == 1
    assert value(text, "process_resident_memory_bytes") > 0
    assert value(text, "python_info") == 1
    assert any(sample.name == "python_gc_objects_collected_total" for sample in samples(text))
    # Prometheus asks for OpenMetrics, the format that carries exemplars.
    openmetrics = await anonymous.get("/metrics", headers={"Accept": OPENMETRICS})
    assert openmetrics.content_type == "application/openmetrics-text"
    assert (await openmetrics.text()).endswith("# EOF\n")


async def test_with_a_token_a_scrape_must_bring_it(api_factory: ApiFactory, auth: dict[str, str]) -> None:
    api = await api_factory(metrics_token=SecretStr(TOKEN))

    for refused in ({}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"}, auth):
        # The fixture's client sends its API key unless told otherwise: an API key is no metrics token.
        response = await api.get("/metrics", headers=refused or {"Authorization": ""})
        assert response.status == 401, refused
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="luster-metrics"'
        assert (await response.json())["error"]["code"] == "unauthenticated"

    text = await scrape(api, Authorization=f"Bearer {TOKEN}")
    assert value(text, "luster_build_info", service="api") == 1


async def test_in_production_without_a_token_metrics_answer_as_an_unknown_path(
    aiohttp_client: AiohttpClient, api_settings: ApiSettings
) -> None:
    settings = api_settings.model_copy(update={"environment": "production", "allow_local_storage": True})
    anonymous = await aiohttp_client(create_app(settings))

    metrics = await anonymous.get("/metrics")
    unknown = await anonymous.get("/no-such-page")

    assert (metrics.status, await metrics.json()) == (unknown.status, await unknown.json())
    assert metrics.status == 404


async def test_requests_are_labelled_with_the_route_template_never_the_path(api: Client) -> None:
    job_ids = [str(uuid.uuid4()) for _ in range(3)]
    for job_id in job_ids:
        assert (await api.get(f"/jobs/{job_id}")).status == 404
    assert (await api.get("/jobs")).status == 200

    text = await scrape(api)

    requests = "luster_http_requests_total"
    assert value(text, requests, route="/jobs/{job_id}", method="GET", status_class="4xx") == 3
    assert value(text, requests, route="/jobs", method="GET", status_class="2xx") == 1
    assert value(text, "luster_http_request_duration_seconds_count", route="/jobs/{job_id}") == 3
    assert not any(job_id in str(sample.labels) for sample in samples(text) for job_id in job_ids)


async def test_paths_no_route_matches_share_one_label(api: Client) -> None:
    paths = [f"/{uuid.uuid4()}", f"/jobs/{uuid.uuid4()}/nothing", "/admin/../etc/passwd", "/%7Bjob_id%7D"]
    for path in paths:
        assert (await api.get(path)).status == 404
    assert (await api.delete("/jobs")).status == 405

    text = await scrape(api)

    routes = {s.labels["route"] for s in samples(text) if s.name == "luster_http_requests_total"}
    assert routes == {UNMATCHED}  # the scrape itself is counted once answered, after its own body
    assert value(text, "luster_http_requests_total", route=UNMATCHED, status_class="4xx") == len(paths) + 1


async def test_a_made_up_method_never_becomes_a_label(api: Client) -> None:
    response = await api.request("BREW", "/jobs")
    assert response.status in (400, 405)

    text = await scrape(api)

    methods = {s.labels["method"] for s in samples(text) if s.name == "luster_http_requests_total"}
    assert methods <= {"GET", "other"}


@pytest.mark.parametrize(("sampler", "linked"), [(ALWAYS_ON, True), (ALWAYS_OFF, False)])
def test_a_duration_carries_its_sampled_trace_as_an_exemplar(sampler: Sampler, linked: bool) -> None:
    """Grafana links the exemplar to Jaeger; a trace that was not kept would lead nowhere, so it gets none."""
    metrics = ApiMetrics.create("test")
    with TracerProvider(sampler=sampler).get_tracer("test").start_as_current_span("GET /jobs/{job_id}") as span:
        metrics.observe("/jobs/{job_id}", "GET", 200, 0.2)
    trace_id = format(span.get_span_context().trace_id, "032x")

    text = exposition(metrics.registry, OPENMETRICS).text or ""

    bucket = next(line for line in text.splitlines() if 'le="0.25"' in line and "/jobs/{job_id}" in line)
    assert (f'# {{trace_id="{trace_id}"}} 0.2' in bucket) is linked
