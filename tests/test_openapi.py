"""The OpenAPI description: valid 3.1, complete both ways against the route table, built from the schema files."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from erapi.app import create_app
from erapi.handlers.docs import ASSETS, CONTENT_SECURITY_POLICY
from erapi.openapi import OPERATIONS, SchemaFiles, route_table
from erapi.validation import REQUEST_SCHEMAS
from tests.api_fixtures import make_config, token

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_app(make_config()))


@pytest.fixture
async def document(client) -> dict:
    response = await client.get("/apollo/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json()


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS}


async def test_the_document_validates_as_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()


async def test_every_route_is_documented_and_every_documented_operation_is_a_route(client, document):
    routes = set(route_table(client.app.router.routes()))
    documented = documented_operations(document)
    assert routes - documented == set(), "routes without an entry in erapi.openapi.OPERATIONS"
    assert documented - routes == set(), "documented operations that no route serves"
    assert set(OPERATIONS) == routes, "OPERATIONS entries without a route"


async def test_components_are_the_schema_files_with_refs_pointing_inside_the_document(document):
    components = document["components"]["schemas"]
    files = sorted(SCHEMAS.glob("*.json")) + sorted((SCHEMAS / "responses").glob("*.json"))
    assert set(components) == {path.stem for path in files}
    for path in files:
        original = json.loads(path.read_text())
        component = components[path.stem]
        # the same schema, key for key, apart from $id/$schema and where references point
        assert _without_refs(component) == _without_refs(original, drop=("$id", "$schema")), path.name
    for ref in _refs(document):
        assert ref.startswith("#/"), f"$ref {ref} leaves the document"
        _resolve(document, ref)


async def test_request_bodies_are_the_files_the_service_validates_with(document):
    referenced = {ref.split("/")[3] for ref in _refs(document["paths"])}
    assert set(REQUEST_SCHEMAS) <= referenced
    body = document["paths"]["/apollo/er/relationships"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"oneOf": [{"$ref": "#/components/schemas/relationship"},
                                        {"$ref": "#/components/schemas/relationships-request"}]}


async def test_each_operation_states_its_scopes_and_its_refusals(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            scopes = {scope for requirement in operation["security"] for scope in requirement["bearerAuth"]}
            codes = set(operation["responses"])
            if scopes:
                assert {"401", "403", "429"} <= codes, (method, path)
                assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
                assert "Retry-After" in operation["responses"]["429"]["headers"]
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= codes, (method, path)
            assert any(code.startswith("2") for code in codes), (method, path)


async def test_operations_without_security_need_no_token_and_the_others_refuse_without_one(client, document):
    """The description's security matches the service's behaviour, operation by operation."""
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path.replace("{asset}", "swagger-ui.css"))
        for method, operation in item.items():
            response = await client.request(method.upper(), concrete, headers={"ercollectionid": "c1"})
            if operation["security"]:
                assert response.status == 401, (method, path)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            else:
                assert response.status in (200, 503), (method, path)


async def test_the_docs_page_loads_only_assets_the_service_serves(client):
    response = await client.get("/apollo/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-eval'" not in CONTENT_SECURITY_POLICY and "script-src 'self'" in CONTENT_SECURITY_POLICY
    page = await response.text()
    links = _links(page)
    assert links, "the page references its scripts and styles"
    for link in links:
        assert link.startswith("/apollo/docs/assets/"), f"{link} is not served by the service"
        asset = await client.get(link)
        assert asset.status == 200, link
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        text = await asset.read()
        assert len(text) > 0
    initializer = await (await client.get("/apollo/docs/assets/erapi-docs.js")).text()
    assert "validatorUrl: null" in initializer  # Swagger UI would otherwise call its online validator
    assert re.findall(r"https?://", page + initializer) == []


async def test_every_documented_asset_is_served_and_others_are_404(client):
    for name in ASSETS:
        assert (await client.get(f"/apollo/docs/assets/{name}")).status == 200, name
    for name in ("swagger-ui.js.map", "..%2Fcore.py", "swagger-editor.js", "index.html"):
        response = await client.get(f"/apollo/docs/assets/{name}")
        assert response.status == 404
        assert (await response.json())["status"]["code"] == "404"


async def test_the_document_is_public_but_authenticated_answers_are_not_cached(client):
    response = await client.get("/apollo/openapi.json")
    assert "no-store" not in response.headers.get("Cache-Control", "")
    authed = await client.get("/apollo/schema/entitytypes", headers={"Authorization": f"Bearer {token('alice')}"})
    assert authed.status == 200
    assert authed.headers["Cache-Control"] == "no-store"


# ---- helpers --------------------------------------------------------------------------------------------------------

def _refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _without_refs(node, drop=()):
    if isinstance(node, dict):
        return {key: ("<ref>" if key == "$ref" else _without_refs(value, drop))
                for key, value in node.items() if key not in drop}
    if isinstance(node, list):
        return [_without_refs(value, drop) for value in node]
    return node


def _resolve(document: dict, ref: str):
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _links(page: str) -> list[str]:
    class Collector(HTMLParser):
        def __init__(self):
            super().__init__()
            self.links = []

        def handle_starttag(self, tag, attrs):
            for name, value in attrs:
                if name in ("src", "href") and value:
                    self.links.append(value)

    collector = Collector()
    collector.feed(page)
    return collector.links
