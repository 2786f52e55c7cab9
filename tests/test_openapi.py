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
from erapi.config import JobsConfig, ServerConfig
from erapi.openapi import route_table
from erapi.routes import OPERATIONS
from erapi.schema_components import component_name
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
    assert routes - documented == set(), "routes the router serves that the table does not describe"
    assert documented - routes == set(), "documented operations that no route serves"
    assert set(OPERATIONS) == routes, "table entries without a route"


async def test_components_are_the_schema_files_and_their_definitions_each_by_a_short_name(document):
    """Generators resolve only #/components/schemas/Name: every file and every $defs entry is one, by name."""
    components = document["components"]["schemas"]
    files = sorted(SCHEMAS.glob("*.json")) + sorted((SCHEMAS / "responses").glob("*.json"))
    sources = {}  # component name -> (file, the schema it is made from)
    for path in files:
        original = json.loads(path.read_text())
        for definition, subschema in original.get("$defs", {}).items():
            sources[component_name(path.stem, definition)] = (path, subschema)
        if set(original) - {"$schema", "$id", "title", "description", "$defs"}:
            sources[component_name(path.stem)] = (path, original)
    assert {"Entity", "Relationship", "RelationshipsRequest", "CollectionId", "Id", "SystemData", "JobAccepted",
            "Error", "StatusLogs"} <= set(sources)
    assert set(components) == set(sources)
    for name, (path, original) in sources.items():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]{1,31}", name), name
        component = components[name]
        # the same schema once every $ref is replaced by what it points at, titles and descriptions aside
        assert _inlined(document, component) == _inlined_file(path, original), name
        if isinstance(original, dict) and "title" in original:
            assert component["description"].startswith(original["title"]), name
    for ref in _refs(document):
        assert re.fullmatch(r"#/components/schemas/[A-Za-z0-9]+", ref), f"$ref {ref} is not a whole component"
        _resolve(document, ref)


async def test_no_schema_is_a_boolean_and_no_title_is_a_sentence(document):
    """openapi-generator and openapi-typescript stop on a schema that is the literal false."""
    booleans = [where for where, schema in _schemas(document) if isinstance(schema, bool)]
    assert booleans == []
    titles = [where for where, schema in _schemas(document) if isinstance(schema, dict) and "title" in schema]
    assert titles == []
    assert json.loads((SCHEMAS / "common.json").read_text())["$defs"]["systemData"] is False
    assert document["components"]["schemas"]["SystemData"] == {"not": {}}


async def test_true_false_parameters_are_typed_boolean(document):
    found = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in BOOLEAN_PARAMETERS:
                    assert parameter["schema"]["type"] == "boolean", (method, path, parameter["name"])
                    assert isinstance(parameter["schema"]["default"], bool)
                    found.add(parameter["name"])
                # a true/false parameter written as a string (the generated client would send any text)
                assert parameter["schema"].get("default") not in ("true", "false"), (method, path, parameter["name"])
    assert found == BOOLEAN_PARAMETERS


async def test_the_status_trackers_filters_are_query_parameters_of_their_own(document):
    parameters = document["paths"]["/apollo/status/logs"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in parameters] == [("ercollectionid", "header")] + [
        (name, "query") for name in ("transactionid", "relationshipid", "entityid", "correlationid", "startTime",
                                     "endTime", "state", "limit", "continuationToken")] + [("X-ER-Sequence", "header")]
    assert all(p["schema"].get("type") in ("string", "integer") for p in parameters[1:])


async def test_the_item_limits_are_stated_for_each_mode(document):
    """100 items without async, 10,000 with async: true (the defaults); the schema can hold only the larger."""
    sync_limit, async_limit = ServerConfig().max_items, JobsConfig().max_items
    assert (sync_limit, async_limit) == (100, 10_000)
    components = document["components"]["schemas"]
    for path, array in (("/apollo/er/entities", "EntitiesRequest"), ("/apollo/er/relationships",
                                                                     "RelationshipsRequest")):
        operation = document["paths"][path]["post"]
        assert components[array]["maxItems"] == async_limit
        assert "up to 100 (sync) or 10,000 (async: true)" in operation["summary"]
        assert "More than 100 items without async, more than 10,000 with async: true" in \
            operation["responses"]["413"]["description"]
        async_header = next(p for p in operation["parameters"] if p["name"] == "async")
        assert "at most 100 items" in async_header["description"]
        assert "at most 10,000 items" in async_header["description"]


async def test_the_202_schema_carries_the_transaction_and_its_tracker(document):
    data = document["components"]["schemas"]["JobAccepted"]["properties"]["data"]
    assert set(data["required"]) == {"transactionId", "tracker"}


async def test_tags_are_named_in_plain_english(document):
    tags = [tag["name"] for tag in document["tags"]]
    assert {"Probes", "Collections", "Entities", "Relationships", "Status", "Type catalog",
            "Documentation"} <= set(tags)
    assert "Entitys" not in tags
    entities = document["paths"]["/apollo/er/entities"]
    read = document["paths"]["/apollo/er/entities/{entityId}"]["get"]
    assert read["tags"] == entities["post"]["tags"] == ["Entities"]
    used = {tag for item in document["paths"].values() for operation in item.values() for tag in operation["tags"]}
    assert used == set(tags)


async def test_request_bodies_are_the_files_the_service_validates_with(document):
    referenced = {ref.split("/")[3] for ref in _refs(document["paths"])}
    assert {component_name(stem) for stem in REQUEST_SCHEMAS} <= referenced
    body = document["paths"]["/apollo/er/relationships"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"oneOf": [{"$ref": "#/components/schemas/Relationship"},
                                        {"$ref": "#/components/schemas/RelationshipsRequest"}]}


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

BOOLEAN_PARAMETERS = {"async", "includeSystemData", "includeInactive", "includeSubtypes", "createInverse", "cascade",
                      "validateOnly", "atomic", "transitive", "includeDocuments"}
ONE_SCHEMA = {"items", "not", "propertyNames", "contains", "if", "then", "else", "additionalProperties"}
SCHEMA_LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
SCHEMA_MAP = {"properties", "patternProperties", "$defs"}


def _schemas(document: dict):
    """(where, schema) for every schema of the document: components, parameters, bodies, their subschemas."""
    found = [(f"components/{name}", schema) for name, schema in document["components"]["schemas"].items()]
    found += [(f"{path} {method} {parameter['name']}", parameter["schema"])
              for path, item in document["paths"].items() for method, operation in item.items()
              for parameter in operation.get("parameters", [])]
    found += [(f"{path} {method} {part}", media["schema"])
              for path, item in document["paths"].items() for method, operation in item.items()
              for part, body in [("request", operation.get("requestBody", {})), *operation["responses"].items()]
              for media in body.get("content", {}).values() if "schema" in media]
    return [pair for where, schema in found for pair in _subschemas(where, schema)]


def _subschemas(where: str, schema):
    yield where, schema
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key == "additionalProperties" and value is False:
            continue  # "no other properties": the boolean form every generator reads
        if key in ONE_SCHEMA:
            yield from _subschemas(f"{where}/{key}", value)
        elif key in SCHEMA_LIST:
            for index, item in enumerate(value):
                yield from _subschemas(f"{where}/{key}/{index}", item)
        elif key in SCHEMA_MAP:
            for name, item in value.items():
                yield from _subschemas(f"{where}/{key}/{name}", item)


def _inlined(document: dict, node):
    """``node`` with every $ref replaced by its (inlined) target, false and boolean consts spelt as in the files."""
    if isinstance(node, dict):
        if "$ref" in node:  # the target in place of the reference, next to the keywords beside it
            return {**_inlined(document, {key: value for key, value in node.items() if key != "$ref"}),
                    "$ref": _inlined(document, _resolve(document, node["$ref"]))}
        if node == {"not": {}} or (set(node) == {"not", "description"} and node["not"] == {}):
            return False
        if node.get("type") == "boolean" and len(node.get("enum", ())) == 1:  # a boolean const, spelt as an enum
            node = {**{key: value for key, value in node.items() if key not in ("type", "enum")},
                    "const": node["enum"][0]}
        return {key: _inlined(document, value) for key, value in node.items() if key not in ("title", "description")}
    if isinstance(node, list):
        return [_inlined(document, value) for value in node]
    return node


def _inlined_file(path: Path, node):
    """The same for a schema of a file: its $refs resolved against the files, $id/$schema/$defs dropped."""
    if isinstance(node, dict):
        if "$ref" in node:
            target, _, pointer = node["$ref"].partition("#")
            source = path.parent / target if target else path
            schema = json.loads(source.read_text())
            return {**_inlined_file(path, {key: value for key, value in node.items() if key != "$ref"}),
                    "$ref": _inlined_file(source, _resolve(schema, "#" + pointer) if pointer else schema)}
        return {key: _inlined_file(path, value) for key, value in node.items()
                if key not in ("title", "description", "$id", "$schema", "$defs")}
    if isinstance(node, list):
        return [_inlined_file(path, value) for value in node]
    return node


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
