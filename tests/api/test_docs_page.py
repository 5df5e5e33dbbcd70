"""The docs page: Swagger UI served by the api itself, a fixed set of files, and examples the server takes."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from playwright.async_api import Browser, expect
from pytest_aiohttp import AiohttpClient

from services.api.app import create_app
from services.api.docs import ASSETS
from services.api.openapi import document
from services.api.routes import ENDPOINTS
from services.api.settings import ApiSettings
from tests.conftest import Client


@pytest.fixture
async def anonymous(aiohttp_client: AiohttpClient, api_settings: ApiSettings) -> Client:
    """The real app behind a client that sends no key."""
    return await aiohttp_client(create_app(api_settings))


def inputs(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) of every parameter and request body of the document."""
    found = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for parameter in op["parameters"]:
                where = f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
                found.append((where, parameter["schema"], parameter.get("example")))
            for media_type, media in op.get("requestBody", {}).get("content", {}).items():
                found.append((f"{method.upper()} {path} {media_type}", media["schema"], media.get("example")))
    return found


def test_every_input_but_a_bare_file_has_an_example_valid_for_its_schema() -> None:
    spec = document(ENDPOINTS, version="test")
    found = inputs(spec)

    assert {where.split(" ", 2)[1] for where, _, _ in found} >= {"/jobs", "/assets", "/assets/{asset_id}/complete"}
    for where, schema, example in found:
        if schema.get("properties", {}).keys() == {"file"}:
            assert example is None, where  # a photo alone: no JSON value is one
            continue
        assert example is not None, f"{where} has no example"
        if "multipart" in where:  # the text fields of a form of photos: no JSON value is a photo
            schema = {**schema, "required": [name for name in schema.get("required", ()) if name != "file"]}
        # Against the document as a whole, so `$ref`s to its components resolve; a file part is a string.
        rooted = {**schema, "components": spec["components"]}
        jsonschema.Draft202012Validator(rooted, format_checker=jsonschema.FormatChecker()).validate(example)


async def test_the_examples_are_requests_the_server_takes(api: Client) -> None:
    spec = document(ENDPOINTS, version="test")
    query = {p["name"]: str(p["example"]) for p in spec["paths"]["/jobs"]["get"]["parameters"]}
    asset_query = {p["name"]: str(p["example"]) for p in spec["paths"]["/assets"]["get"]["parameters"]}

    assert (await api.get("/jobs", params=query)).status == 200
    assert (await api.get("/assets", params=asset_query)).status == 200
    body = spec["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["example"]
    missing = await api.post("/jobs", json=body, headers={"Idempotency-Key": "listing-4217-photo-3"})
    assert missing.status == 404  # valid in every field; only its asset is no asset of this key


async def test_the_page_is_public_and_loads_only_this_servers_files(anonymous: Client) -> None:
    response = await anonymous.get("/docs")

    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert not re.search(r"https?:|//", page)  # no other host, no CDN
    assert 'data-document="/openapi.json"' in page
    referenced = set(re.findall(r"""(?:src|href)="([^"]+)\"""", page))
    assert referenced == {*ASSETS, "data:,"}  # and an empty icon, so the browser asks for no /favicon.ico
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("path", "content_type"), [(path, kind) for path, (_, kind) in ASSETS.items()])
async def test_each_file_of_the_page_is_served_with_its_type(anonymous: Client, path: str, content_type: str) -> None:
    response = await anonymous.get(path)

    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(await response.read()) > 100


async def test_the_init_script_points_swagger_ui_at_this_document_and_keeps_no_key(anonymous: Client) -> None:
    script = await (await anonymous.get("/docs/docs.js")).text()

    assert "url: root.dataset.document" in script
    assert "tryItOutEnabled: true" in script and "persistAuthorization: false" in script
    assert "validatorUrl: null" in script  # the default would send the document to validator.swagger.io


@pytest.mark.parametrize(
    "path",
    [
        "/docs/swagger-ui/index.html",
        "/docs/swagger-ui/swagger-ui.js.map",
        "/docs/swagger-ui/LICENSE",
        "/docs/swagger-ui/..%2f..%2fsettings.py",
        "/docs/swagger-ui/%2e%2e/%2e%2e/settings.py",
        "/docs/swagger-ui/swagger-ui.css%00.py",
        "/docs/swagger-ui/%00",
        "/docs/..%2fdocs.py",
        "/docs/swagger-ui/swagger-ui.css/",
        "/docs/static/docs.js",
    ],
)
async def test_any_other_path_is_a_json_refusal_never_a_file(anonymous: Client, path: str) -> None:
    response = await anonymous.get(path)

    assert 400 <= response.status < 500, (path, response.status)
    assert response.content_type == "application/json"
    assert "error" in await response.json()


@pytest.mark.browser
async def test_swagger_ui_renders_the_operations_and_authorize_under_the_pages_csp(
    anonymous: Client, browser: Browser
) -> None:
    page = await browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await page.goto(str(anonymous.make_url("/docs")))

    await expect(page.locator("#operations-jobs-create_job")).to_be_visible(timeout=15_000)
    await expect(page.locator(".opblock-summary-path", has_text="/jobs/{job_id}/cancel")).to_be_visible()
    await page.locator("#operations-jobs-create_job .opblock-summary").click()
    body = page.locator("#operations-jobs-create_job textarea.body-param__text")
    await expect(body).to_have_value(re.compile("Brighter and warmer"))  # the document's example, ready to send
    await page.locator("button.authorize").click()
    await expect(page.locator(".auth-container input")).to_be_visible()
    assert problems == []  # a CSP violation is a console error
    origin = str(anonymous.make_url("/"))
    assert [url for url in requested if not url.startswith(origin)] == []
