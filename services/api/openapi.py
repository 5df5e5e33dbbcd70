"""The OpenAPI 3.1 document, generated from the endpoint table and the pydantic models it names."""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.api.routes import ENDPOINTS, Endpoint
from services.api.schemas import ErrorBody

REF_TEMPLATE = "#/components/schemas/{model}"
DESCRIPTIONS = {
    400: "Malformed body",
    404: "Not found",
    409: "Conflict",
    413: "Upload too large",
    415: "Not an accepted image",
    422: "Invalid field",
    503: "A dependency is down",
}


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Request bodies in their validation shape, responses in their serialised shape."""
    found: dict[type[BaseModel], JsonSchemaMode] = {ErrorBody: "serialization"}
    for endpoint in ENDPOINTS:
        for model in (endpoint.request, endpoint.query):
            if model is not None:
                found[model] = "validation"
        if endpoint.response is not None:
            found[endpoint.response] = "serialization"
    return list(found.items())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _request_body(endpoint: Endpoint) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if endpoint.request is not None:
        content["application/json"] = {"schema": _ref(endpoint.request)}
    if endpoint.upload:
        properties: dict[str, Any] = {"file": {"type": "string", "format": "binary"}}
        if endpoint.request is not None:
            schema = endpoint.request.model_json_schema(ref_template=REF_TEMPLATE)
            properties = {**properties, **schema["properties"]}
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": properties}}
    return {"required": True, "content": content} if content else None


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema(ref_template=REF_TEMPLATE)
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": prop}
            for name, prop in schema["properties"].items()
        ]
    if endpoint.method == "POST" and endpoint.path == "/jobs":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    return parameters


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    success: dict[str, Any] = {"description": endpoint.summary}
    if endpoint.response is not None:
        success["content"] = {"application/json": {"schema": _ref(endpoint.response)}}
    elif endpoint.media_type != "application/json":
        success["content"] = {endpoint.media_type: {"schema": {"type": "string", "format": "binary"}}}
    responses = {str(endpoint.status): success}
    if endpoint.redirects:
        responses["307"] = {
            "description": "The object store serves it: follow `Location`, a URL valid for PRESIGNED_URL_EXPIRES_S",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        }
    for status in endpoint.errors:
        error_schema = _ref(ErrorBody) if status != 503 or endpoint.response is None else _ref(endpoint.response)
        responses[str(status)] = {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": error_schema}},
        }
    return responses


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": list(endpoint.tags),
        "parameters": _parameters(endpoint),
        "responses": _responses(endpoint),
    }
    body = _request_body(endpoint)
    if body is not None:
        operation["requestBody"] = body
    return operation


@functools.cache
def document(version: str) -> dict[str, Any]:
    _, schemas = models_json_schema(_models(), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Luster API",
            "version": version,
            "description": "Upload listing photos and turn them into polished ones.",
        },
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {})},
    }
