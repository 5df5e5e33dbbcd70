"""The provisioned Grafana dashboard: valid JSON with the panels operators need, data sources that exist,
and PromQL that asks only for metrics the services export, read from their real registries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.worker.metrics import WorkerMetrics
from tests.harness.monitor import ADMIN

if TYPE_CHECKING:
    from tests.conftest import Client

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "luster.json"
PANELS = {
    "Jobs finished by outcome",
    "Queue depth",
    "API request rate",
    "API latency p95",
    "API 5xx rate",
    "Engine cost",
    "Engine duration p95",
    "Workers alive",
}
# PromQL's own words: aggregations, functions, keywords, and Grafana's interval variable's name.
PROMQL_WORDS = {
    "sum", "count", "min", "max", "avg", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "histogram_quantile", "le",
}  # fmt: skip
# What a series of each type is called in a scrape: a counter's `_total`, a histogram's three.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left once strings, label matchers, ranges,
    grouping clauses, numbers and PromQL's own words are taken out."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return words - PROMQL_WORDS


def exported(text: str) -> set[str]:
    """Every series name a scrape declares, from its families (a family with no sample yet counts too)."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def provisioned_uids() -> set[str]:
    return {source["uid"] for source in yaml.safe_load((GRAFANA / "datasources.yml").read_text())["datasources"]}


def test_the_dashboard_has_the_panels_operators_need() -> None:
    board = dashboard()
    assert (board["uid"], board["title"]) == ("luster", "Luster")
    titles = [panel["title"] for panel in panels()]
    assert set(titles) >= PANELS
    assert len(titles) == len(set(titles))
    assert len({panel["id"] for panel in dashboard()["panels"]}) == len(dashboard()["panels"])
    assert all(panel["targets"] and panel["description"] for panel in panels())


def test_every_data_source_the_dashboard_names_is_provisioned() -> None:
    named = {panel["datasource"]["uid"] for panel in panels()}
    named |= {target["datasource"]["uid"] for panel in panels() for target in panel["targets"]}
    assert named <= provisioned_uids()


def test_durations_link_their_trace_ids_to_jaeger() -> None:
    """Exemplars carry a request's or job's trace id; the Prometheus data source sends them to Jaeger."""
    sources = {s["uid"]: s for s in yaml.safe_load((GRAFANA / "datasources.yml").read_text())["datasources"]}
    [destination] = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination == {"name": "trace_id", "datasourceUid": "jaeger"}
    assert sources["jaeger"]["type"] == "jaeger"
    linked = {panel["title"] for panel in panels() if any(t.get("exemplar") for t in panel["targets"])}
    assert linked == {"API latency p95", "Engine duration p95"}


def test_grafana_loads_the_dashboard_from_the_provisioned_folder() -> None:
    [provider] = yaml.safe_load((GRAFANA / "dashboards.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert any(m.startswith("./deploy/grafana/dashboards.yml:/etc/grafana/provisioning/dashboards/") for m in mounts)


def test_prometheus_scrapes_all_three_services() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"api", "worker", "monitor"}
    assert jobs["api"]["static_configs"] == [{"targets": ["api:8000"]}]
    assert jobs["worker"]["dns_sd_configs"][0]["port"] == 9102
    assert jobs["monitor"]["basic_auth"]["username"] == "admin"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["worker"]["environment"]["METRICS_PORT"] == "9102"
    assert "exemplar-storage" in " ".join(compose["services"]["prometheus"]["command"])


def test_the_metric_name_reader_finds_names_and_only_names() -> None:
    expr = 'sum by (le, route) (rate(x_bucket{status_class="5xx", le="+Inf"}[5m])) / on(job) y_total * 3600'
    assert metric_names(expr) == {"x_bucket", "y_total"}


@pytest.mark.integration
async def test_every_metric_the_dashboard_queries_is_exported(api: Client, monitor: Client) -> None:
    """The api and the monitor as their app factories build them, scraped; the worker's registry as its
    runner builds it."""
    api_scrape = await (await api.get("/metrics")).text()
    monitor_scrape = await (await monitor.get("/metrics", headers=ADMIN)).text()
    worker_scrape = generate_latest(WorkerMetrics.create("test").registry).decode()
    names = exported(api_scrape) | exported(monitor_scrape) | exported(worker_scrape)
    wanted = set().union(*(metric_names(expr) for expr in expressions()))

    assert wanted - names == set()
    assert {"luster_http_requests_total", "luster_engine_cost_usd_total", "luster_workers_active"} <= wanted
