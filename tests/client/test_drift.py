"""The client's models and calls against the api's own /openapi.json: a renamed, added or retyped field fails here."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from luster_client import models
from luster_client.cli import parser
from tests.conftest import Client

pytestmark = pytest.mark.integration

Schema = dict[str, Any]
# Each client model and the document's component it reads.
COMPONENTS: dict[type[BaseModel], str] = {
    models.Job: "JobOut",
    models.Asset: "AssetOut",
    models.JobError: "JobError",
    models.JobTimings: "JobTimings",
    models.JobAttempt: "JobAttempt",
    models.JobWebhook: "JobWebhook",
    models.WebhookAttempt: "WebhookAttemptOut",
    models.WebhookSecret: "WebhookSecretOut",
    models.WebhookSecretEnvelope: "WebhookSecretEnvelope",
    models.JobEnvelope: "JobEnvelope",
    models.AssetEnvelope: "AssetEnvelope",
    models.JobPage: "JobPage",
    models.ErrorBody: "ErrorBody",
    models.ErrorDetail: "ErrorDetail",
    models.AssetPage: "AssetPage",
    models.DirectUpload: "DirectUploadOut",
    models.DirectUploadEnvelope: "DirectUploadEnvelope",
    models.Batch: "BatchOut",
    models.BatchSummary: "BatchSummary",
    models.BatchCounts: "BatchCounts",
    models.BatchEnvelope: "BatchEnvelope",
    models.BatchPage: "BatchPage",
}
CLIENT_NAMES = {component: model.__name__ for model, component in COMPONENTS.items()}
# Each call the client makes: the operation, its success status, the answer's component (None: an image; a
# media type: a file of that type), and the parameters it sends.
CALLS = [
    ("post", "/assets", "201", "AssetEnvelope", set()),
    ("post", "/jobs", "202", "JobEnvelope", {"Idempotency-Key", "Prefer"}),
    ("get", "/jobs/{job_id}", "200", "JobEnvelope", {"job_id", "Prefer"}),
    ("get", "/jobs", "200", "JobPage", {"limit", "cursor", "status"}),
    ("get", "/jobs/{job_id}/output", "200", None, {"job_id"}),
    ("get", "/webhooks/secret", "200", "WebhookSecretEnvelope", set()),
    ("get", "/assets", "200", "AssetPage", {"limit", "cursor"}),
    ("post", "/assets/uploads", "201", "DirectUploadEnvelope", set()),
    ("post", "/assets/{asset_id}/complete", "201", "AssetEnvelope", {"asset_id"}),
    ("post", "/batches", "201", "BatchEnvelope", {"Idempotency-Key"}),
    ("get", "/batches/{batch_id}", "200", "BatchEnvelope", {"batch_id"}),
    ("get", "/batches", "200", "BatchPage", {"limit", "cursor"}),
    ("post", "/batches/{batch_id}/cancel", "200", "BatchEnvelope", {"batch_id"}),
    ("get", "/batches/{batch_id}/outputs.zip", "200", "application/zip", {"batch_id"}),
]


@pytest.fixture
async def document(api: Client) -> Schema:
    response = await api.get("/openapi.json")
    assert response.status == 200
    body: Schema = await response.json()
    return body


def kinds(schema: Schema, components: Schema, names: dict[str, str]) -> frozenset[str]:
    """The JSON shapes a schema allows, as comparable labels; a named object is labelled by its client name."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        target = components[name]
        return (
            frozenset({f"object:{names.get(name, name)}"})
            if "properties" in target
            else kinds(target, components, names)
        )
    if "anyOf" in schema:
        return frozenset().union(*(kinds(option, components, names) for option in schema["anyOf"]))
    if "enum" in schema:
        return frozenset(f"enum:{value}" for value in schema["enum"])
    if schema.get("type") == "array":
        return frozenset(f"array:{kind}" for kind in kinds(schema["items"], components, names))
    return frozenset({f"{schema['type']}:{schema['format']}" if "format" in schema else str(schema["type"])})


def accepts(client: frozenset[str], sent: str) -> bool:
    """Whether a client field typed as `client` reads a value the api documents as `sent`."""
    if sent in client:
        return True
    if sent == "integer":
        return "number" in client
    if sent.startswith("array:"):
        return any(accepts(frozenset({k.removeprefix("array:")}), sent.removeprefix("array:")) for k in client)
    return sent.split(":")[0] == "string" and "string" in client


@pytest.mark.parametrize("model", COMPONENTS, ids=lambda model: model.__name__)
def test_the_client_model_has_exactly_the_documented_fields_with_compatible_types(
    model: type[BaseModel], document: Schema
) -> None:
    components = document["components"]["schemas"]
    documented = components[COMPONENTS[model]]
    own = model.model_json_schema(mode="validation")

    assert set(model.model_fields) == set(documented["properties"])
    optional = {name for name, field in model.model_fields.items() if not field.is_required()}
    assert optional <= set(documented["properties"]) - set(documented.get("required", []))
    for name, schema in documented["properties"].items():
        sent = kinds(schema, components, CLIENT_NAMES)
        read = kinds(own["properties"][name], own.get("$defs", {}), {})
        assert all(accepts(read, kind) for kind in sent), f"{model.__name__}.{name}: sent {sent}, read {read}"


@pytest.mark.parametrize(("method", "path", "status", "component", "parameters"), CALLS)
def test_every_call_of_the_client_is_documented(
    method: str, path: str, status: str, component: str | None, parameters: set[str], document: Schema
) -> None:
    operation = document["paths"][path][method]
    content = operation["responses"][status]["content"]
    if component is None:
        assert any(media.startswith("image/") for media in content)
        assert "307" in operation["responses"]  # the redirect download() follows
    elif "/" in component:
        assert component in content
    else:
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{component}"}
    assert parameters <= {parameter["name"] for parameter in operation.get("parameters", [])}


def test_the_batch_request_takes_what_the_client_sends(document: Schema) -> None:
    body = document["paths"]["/batches"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    components = document["components"]["schemas"]
    batch = components[body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
    job = components[batch["properties"]["jobs"]["items"]["$ref"].rsplit("/", 1)[1]]
    assert {"jobs", "tier", "style", "prompt", "webhook_url", "webhook_events"} <= set(batch["properties"])
    assert {"asset_id", "prompt", "tier", "style"} <= set(job["properties"])


def test_the_job_request_takes_what_the_client_sends(document: Schema) -> None:
    body = document["paths"]["/jobs"]["post"]["requestBody"]["content"]
    assert {"asset_id", "prompt", "tier", "style"} <= set(body["application/json"]["schema"]["properties"])
    assert {"file", "prompt", "tier", "style"} <= set(body["multipart/form-data"]["schema"]["properties"])
    assets = document["paths"]["/assets"]["post"]["requestBody"]["content"]
    assert "file" in assets["multipart/form-data"]["schema"]["properties"]


@pytest.mark.parametrize(("option", "component"), [("--tier", "Tier"), ("--style", "Style")])
def test_the_command_line_takes_every_documented_choice_and_no_other(
    option: str, component: str, document: Schema
) -> None:
    documented = document["components"]["schemas"][component]["enum"]
    for choice in documented:
        assert getattr(parser().parse_args(["submit", "x.jpg", option, choice]), option[2:]) == choice
    assert set(documented) == set(models.TIERS if component == "Tier" else models.STYLES)
    with pytest.raises(SystemExit):
        parser().parse_args(["submit", "x.jpg", option, "undocumented"])
