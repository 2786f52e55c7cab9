"""The JSON Schema files: each is a valid Draft 2020-12 schema, and every ``$ref`` in them resolves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urljoin

import jsonschema
import pytest
import referencing
import referencing.jsonschema
from jsonschema import Draft202012Validator

from erapi.openapi import (
    EXAMPLE_RELATIONSHIP as CONTRACT_EXAMPLE,  # the contract's example, as sent
)

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FILES = sorted([*SCHEMAS.glob("*.json"), *(SCHEMAS / "responses").glob("*.json")])


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def registry() -> referencing.Registry:
    resources = []
    for path in FILES:
        document = load(path)
        resources.append((document["$id"], referencing.Resource.from_contents(
            document, default_specification=referencing.jsonschema.DRAFT202012)))
    return referencing.Registry().with_resources(resources)


def refs(node: Any, base: str) -> Iterator[tuple[str, str]]:
    """(base URI in force, $ref) for every $ref below ``node``, following nested $id changes of base."""
    if isinstance(node, dict):
        if isinstance(node.get("$id"), str):
            base = urljoin(base, node["$id"])
        if isinstance(node.get("$ref"), str):
            yield base, node["$ref"]
        for key, value in node.items():
            if key not in ("enum", "const", "examples", "default"):
                yield from refs(value, base)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value, base)


def test_the_schema_directories_are_not_empty():
    names = {path.relative_to(SCHEMAS).as_posix() for path in FILES}
    assert {"relationships-request.json", "entities-request.json", "common.json", "responses/batch.json",
            "responses/error.json", "responses/status-logs.json"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(SCHEMAS).as_posix())
def test_each_file_is_a_valid_draft_2020_12_schema(path):
    document = load(path)
    assert document.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(document) is Draft202012Validator
    Draft202012Validator.check_schema(document)


def test_ids_are_unique_and_absolute():
    ids = [load(path)["$id"] for path in FILES]
    assert len(ids) == len(set(ids))
    assert all(i.startswith("https://") for i in ids)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(SCHEMAS).as_posix())
def test_every_ref_resolves(path):
    document = load(path)
    resolver = registry().resolver()
    for base, ref in refs(document, document["$id"]):
        resolved = resolver.lookup(urljoin(base, ref))
        assert isinstance(resolved.contents, (dict, bool)), (base, ref)


def test_the_contract_example_and_its_array_form_match_the_request_schema():
    schema = load(SCHEMAS / "relationships-request.json")
    validator = Draft202012Validator(schema, registry=registry())
    validator.validate([CONTRACT_EXAMPLE])
    validator.validate([CONTRACT_EXAMPLE] * 100)
    missing = {k: v for k, v in CONTRACT_EXAMPLE.items() if k != "relationshipType"}
    assert [e.json_path for e in validator.iter_errors([missing])] == ["$[0]"]
    assert not validator.is_valid([{**CONTRACT_EXAMPLE, "sysData": {}}])


def test_an_entity_needs_id_and_entity_type():
    validator = Draft202012Validator(load(SCHEMAS / "entities-request.json"), registry=registry())
    validator.validate([{"id": "ahu-1", "entityType": "BRICK_0_4__AHU", "entityName": "AHU 1", "floor": 3}])
    for missing in ("id", "entityType"):
        assert not validator.is_valid([{k: v for k, v in {"id": "a", "entityType": "T"}.items() if k != missing}])
