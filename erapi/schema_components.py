"""The JSON Schema files of ``schemas/`` in the form OpenAPI client generators take, as ``components.schemas``.

The files stay the single source (the service validates with them as they are); this module derives the
OpenAPI form from them at start-up:

- every file (but one that only holds ``$defs``), and every ``$defs`` entry, becomes a top-level component named in PascalCase after
  the file's stem or the definition's name (``collection-request`` -> ``CollectionRequest``,
  ``common.json#/$defs/collectionId`` -> ``CollectionId``), and every ``$ref`` points at one of them:
  generators resolve ``#/components/schemas/Name`` and nothing deeper;
- a boolean schema becomes its object form (``false`` -> ``{"not": {}}``, ``true`` -> ``{}``); only
  ``additionalProperties`` keeps ``false``, the form every generator reads as "no other properties";
- a ``title`` is folded into the ``description``: generators name classes after titles, and ours are sentences;
- a boolean ``const`` becomes ``"type": "boolean", "enum": [value]`` (the same set of values): for an optional
  property with a boolean ``const``, openapi-python-client 0.29 writes Python that does not parse.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urljoin

import orjson

COMPONENTS = "#/components/schemas/"
# keywords whose value is one schema, a list of schemas, or a map of names to schemas (JSON Schema 2020-12)
ONE_SCHEMA = {"items", "not", "propertyNames", "contains", "if", "then", "else", "unevaluatedItems",
              "unevaluatedProperties", "contentSchema"}
SCHEMA_LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
SCHEMA_MAP = {"properties", "patternProperties", "dependentSchemas"}
DROPPED = {"$id", "$schema", "$defs", "title"}
CONTAINER_KEYS = DROPPED | {"description"}  # a file of only these holds definitions, and is no schema of its own


def component_name(stem: str, definition: str = "") -> str:
    """``("collection-request")`` -> ``CollectionRequest``; ``("common", "collectionId")`` -> ``CollectionId``."""
    words = re.split(r"[^A-Za-z0-9]+", definition or stem)
    return "".join(word[:1].upper() + word[1:] for word in words if word)


def load_components(directories: Iterable[Path]) -> dict[str, Any]:
    """Every ``*.json`` of ``directories`` (and each of their ``$defs``) as components, by component name."""
    documents: dict[str, dict] = {}
    for directory in directories:
        for path in sorted(directory.glob("*.json")):
            if path.stem in documents:
                raise ValueError(f"schema name {path.stem} is used twice (second: {path})")
            documents[path.stem] = orjson.loads(path.read_bytes())
    names = _names_by_uri(documents)
    components: dict[str, Any] = {}
    for stem, document in documents.items():
        base = document["$id"]
        for definition, subschema in document.get("$defs", {}).items():
            components[component_name(stem, definition)] = _converted(subschema, base, names)
        if not _only_definitions(document):
            components[component_name(stem)] = _converted(document, base, names)
    return components


def _names_by_uri(documents: Mapping[str, dict]) -> dict[str, str]:
    """The component name of each file's ``$id`` and of each ``$id#/$defs/name``; two alike is an error."""
    names: dict[str, str] = {}
    for stem, document in documents.items():
        uris = {} if _only_definitions(document) else {document["$id"]: component_name(stem)}
        uris.update({f"{document['$id']}#/$defs/{definition}": component_name(stem, definition)
                     for definition in document.get("$defs", {})})
        for uri, name in uris.items():
            if name in names.values():
                raise ValueError(f"two schemas would be the component {name}; rename one (second: {uri})")
            names[uri] = name
    return names


def _only_definitions(document: Mapping[str, Any]) -> bool:
    return not set(document) - CONTAINER_KEYS


def _converted(node: Any, base: str, names: Mapping[str, str]) -> Any:
    """One schema in its OpenAPI form (see the module's docstring); ``base`` resolves relative ``$ref``s."""
    if isinstance(node, bool):
        return {} if node else {"not": {}}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED:
            continue
        if key == "$ref":
            out[key] = _component_ref(urljoin(base, value), names)
        elif key in ONE_SCHEMA or (key == "additionalProperties" and value is not False):
            out[key] = _converted(value, base, names)
        elif key in SCHEMA_LIST:
            out[key] = [_converted(item, base, names) for item in value]
        elif key in SCHEMA_MAP:
            out[key] = {name: _converted(item, base, names) for name, item in value.items()}
        elif key == "const" and isinstance(value, bool):
            out.update(type="boolean", enum=[value])
        else:
            out[key] = value
    if isinstance(node.get("title"), str):
        out["description"] = ". ".join(filter(None, [node["title"], node.get("description")]))
    return out


def _component_ref(absolute: str, names: Mapping[str, str]) -> str:
    if absolute.endswith("#"):
        absolute = absolute[:-1]
    if absolute not in names:
        raise ValueError(f"$ref to {absolute} names neither a schema file nor one of its $defs")
    return COMPONENTS + names[absolute]
