"""The OpenAPI 3.1 document, a pure function of the endpoint table and the pydantic models it names.

`create_app` builds it once from `routes.ENDPOINTS`. It says what the server accepts, no more: bodies
with `additionalProperties: false` where the models forbid extras, `file` or `asset_id` (exactly one)
on a job form, patterns on cursors and prompts, and every answer a route gives, including those of
authentication, limits and a database outage. Every input but a bare file carries an example, taken from
the models (`examples` on a field or a model), which the docs page puts in its forms.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from services.api.endpoint import Endpoint, Header
from services.api.schemas import EXAMPLE_ASSET_ID, EXAMPLE_JOB_ID, FORM_FIELDS, ErrorBody
from shared.imaging import ALLOWED_FORMATS

Document = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lus_ API key",
        "description": "`Authorization: Bearer lus_…`; keys are created by an operator and shown once.",
    }
}
DESCRIPTIONS = {
    400: "Malformed body, path or header",
    401: "Missing, malformed, unknown or revoked API key",
    403: "The key's plan does not include the tier asked for",
    404: "Not found (or another owner's)",
    409: "Conflict",
    413: "Upload too large",
    415: "Not an accepted image",
    422: "Invalid field",
    429: "Over a limit of the key: retry after `Retry-After` seconds",
    503: "A dependency is down",
}
INTEGER_HEADER = {"schema": {"type": "integer", "minimum": 0}}
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {"description": "Requests a minute this key may make here", **INTEGER_HEADER},
    "RateLimit-Remaining": {"description": "Requests left in this minute", **INTEGER_HEADER},
    "RateLimit-Reset": {"description": "Seconds until the minute's count starts again", **INTEGER_HEADER},
}
RETRY_AFTER = {"description": "Seconds to wait before trying again", "required": True, **INTEGER_HEADER}
CHALLENGE = {"description": '`Bearer realm="luster"`', "required": True, "schema": {"type": "string"}}
FILE = {"type": "string", "format": "binary", "description": "The photo: JPEG, PNG or WebP."}
# A part's name is a quoted header parameter: no control characters (a client percent-encodes CR and LF),
# and no trailing backslash, which would escape the closing quote.
PART_NAME = {"pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\\\\]$"}
FILE_ENCODING = {"file": {"contentType": ", ".join(ALLOWED_FORMATS.values())}}


def _models(endpoints: Sequence[Endpoint]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    """Request bodies in their validation shape, responses in their serialised shape."""
    found: dict[type[BaseModel], JsonSchemaMode] = {ErrorBody: "serialization"}
    for endpoint in endpoints:
        for model in (endpoint.request, endpoint.query, endpoint.headers):
            if model is not None:
                found[model] = "validation"
        if endpoint.response is not None:
            found[endpoint.response] = "serialization"
    return list(found.items())


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's validation schema, to be tightened for one use; the models it names stay components."""
    schema = copy.deepcopy(model.model_json_schema(ref_template=REF_TEMPLATE, by_alias=True))
    schema.pop("$defs", None)
    return schema


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` without the None: an absent query parameter or form field is how one says "none"."""
    branches = [branch for branch in schema.get("anyOf", ()) if branch != {"type": "null"}]
    if len(branches) != 1:
        return schema
    outer = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    return {**branches[0], **outer}


def _required(schema: dict[str, Any], name: str) -> dict[str, Any]:
    schema["properties"][name] = _non_null(schema["properties"][name])
    schema["required"] = [*schema.get("required", ()), name]
    return schema


def _json_body(endpoint: Endpoint, model: type[BaseModel]) -> dict[str, Any]:
    # Without a form there is no `file` to stand in for the field, so the body must name it.
    if endpoint.file_replaces is None:
        return _ref(model)
    return _required(_fields(model), endpoint.file_replaces)


def _form_body(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.request is None:  # the server reads `file` and ignores any other named field
        return {"type": "object", "properties": {"file": FILE}, "required": ["file"], "propertyNames": PART_NAME}
    if endpoint.form is not None:
        return _files_form(endpoint.form, endpoint.max_files)
    schema = _fields(endpoint.request)
    # A form field left out is how a form says "none"; arrays travel as one comma-separated field.
    schema["properties"] = {name: FORM_FIELDS.get(name, _non_null(prop)) for name, prop in schema["properties"].items()}
    schema["properties"]["file"] = FILE
    if endpoint.file_replaces is None:
        schema["required"] = [*schema.get("required", ()), "file"]
        return schema
    name = endpoint.file_replaces
    schema["properties"][name] = _non_null(schema["properties"][name])
    # Exactly one of the two: the server refuses both and neither.
    schema["oneOf"] = [{"required": [name]}, {"required": ["file"]}]
    return schema


def _files_form(model: type[BaseModel], max_files: int) -> dict[str, Any]:
    """A form of `model`'s fields and 1 to `max_files` photos, a `file` part each."""
    schema = _fields(model)
    schema["properties"] = {name: FORM_FIELDS.get(name, _non_null(prop)) for name, prop in schema["properties"].items()}
    schema["properties"]["file"] = {"type": "array", "items": FILE, "minItems": 1, "maxItems": max_files}
    schema["required"] = [*schema.get("required", ()), "file"]
    return schema


def _media(schema: dict[str, Any], example: Any, **more: Any) -> dict[str, Any]:
    return {"schema": schema, **more} | ({"example": example} if example is not None else {})


def _example(model: type[BaseModel] | None) -> Any:
    """The first of a model's `examples`, a body as a client sends it.

    A form of a file alone has none: no JSON value is a photo, and a client sending the example's text as
    the file would be refused (the docs page offers a file chooser instead).
    """
    if model is None:
        return None
    return next(iter(model.model_json_schema(by_alias=True).get("examples", ())), None)


def _request_body(endpoint: Endpoint) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    example = _example(endpoint.request)
    if endpoint.request is not None:
        content["application/json"] = _media(_json_body(endpoint, endpoint.request), example)
    if endpoint.upload:
        form_example = _example(endpoint.form) if endpoint.form is not None else example
        content["multipart/form-data"] = _media(_form_body(endpoint), form_example, encoding=FILE_ENCODING)
    return {"required": True, "content": content} if content else None


def _model_parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = _fields(model)
    return [
        _parameter(name, where, name in schema.get("required", ()), prop) for name, prop in schema["properties"].items()
    ]


def _parameter(name: str, where: str, required: bool, prop: dict[str, Any]) -> dict[str, Any]:
    """A field as a parameter; its first example is the parameter's (where the docs page reads it)."""
    schema = _non_null(prop)
    parameter = {"name": name, "in": where, "required": required, "schema": schema}
    if examples := schema.pop("examples", None):
        parameter["example"] = examples[0]
    return parameter


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
            "example": EXAMPLE_ASSET_ID if name == "asset_id" else EXAMPLE_JOB_ID,
        }
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    return path + _model_parameters(endpoint.query, "query") + _model_parameters(endpoint.headers, "header")


def _error(status: int, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _success(endpoint: Endpoint) -> dict[str, Any]:
    success: dict[str, Any] = {"description": endpoint.summary}
    if endpoint.response is not None:
        # An event stream's model is one event (OpenAPI 3.1: `schema` of text/event-stream describes each).
        success["content"] = {endpoint.media_type: {"schema": _ref(endpoint.response)}}
    elif endpoint.media_type != "application/json":
        success["content"] = {endpoint.media_type: {"schema": {"type": "string", "format": "binary"}}}
    headers = {header.name: _header(header) for header in endpoint.response_headers}
    if endpoint.limit is not None:
        headers |= RATE_LIMIT_HEADERS
    if headers:
        success["headers"] = headers
    return success


def _header(header: Header) -> dict[str, Any]:
    return {"description": header.description, "required": header.required, "schema": {"type": "string"}}


def _statuses(endpoint: Endpoint) -> list[int]:
    """The route's own errors, plus what every protected route can answer: no key, over a limit, no database."""
    # Any route: a header value that is not text, or a path with control characters, is refused before routing.
    statuses = set(endpoint.errors) | {400, 503}
    if not endpoint.public:
        statuses.add(401)
    if endpoint.limit is not None:
        statuses.add(429)
    return sorted(statuses)


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    responses = {str(endpoint.status): _success(endpoint)}
    if endpoint.replay_status is not None:
        responses[str(endpoint.replay_status)] = {**_success(endpoint), "description": "Done already: the same answer"}
    if endpoint.redirects:
        responses["307"] = {
            "description": "The object store serves it: follow `Location`, a URL valid for PRESIGNED_URL_EXPIRES_S",
            "headers": {"Location": {"required": True, "schema": {"type": "string", "format": "uri"}}},
        }
    for status in _statuses(endpoint):
        if status == 503 and endpoint.response is not None and endpoint.public:
            responses["503"] = _error(503, _ref(endpoint.response))  # /health names what is down
        elif status == 401:
            responses["401"] = _error(401, _ref(ErrorBody), {"WWW-Authenticate": CHALLENGE})
        elif status == 429:
            responses["429"] = _error(429, _ref(ErrorBody), {"Retry-After": RETRY_AFTER, **RATE_LIMIT_HEADERS})
        else:
            responses[str(status)] = _error(status, _ref(ErrorBody))
    return responses


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": endpoint.handler.__name__,
        "tags": list(endpoint.tags),
        "parameters": _parameters(endpoint),
        "responses": _responses(endpoint),
    }
    if endpoint.public:
        operation["security"] = []  # overrides the document's bearerAuth
    body = _request_body(endpoint)
    if body is not None:
        operation["requestBody"] = body
    return operation


# Cached: a pure function of hashable arguments, and the tests build an app (and so a document) each.
@functools.cache
def document(endpoints: tuple[Endpoint, ...], *, version: str) -> Document:
    """The document of `endpoints`, the API at `version`."""
    _, schemas = models_json_schema(_models(endpoints), ref_template=REF_TEMPLATE, by_alias=True)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Luster API",
            "version": version,
            "description": "Upload listing photos and turn them into polished ones.",
        },
        "paths": paths,
        "components": {"schemas": schemas.get("$defs", {}), "securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearerAuth": []}],
    }
