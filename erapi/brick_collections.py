"""Which ERCollection each entity of an ``erapi import`` goes to (docs/BRICK.md, "Collections").

One collection (``--collection``), one per top-level Brick class (``--split-by-class``), or the rules of a
mapping file (``--collections-file``, TOML or JSON): an entity goes to the collection of its IRI, else of the
longest IRI prefix it starts with, else of the most specific of its class's ancestors the file names, else
to the file's ``default``, else to ``--collection``.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Callable

from erapi.catalog import Catalog

CATALOG_PREFIX = "BRICK_1_4__"
CollectionOf = Callable[[str, str], str]  # (entity IRI, entity type) -> collection id
_COLLECTION_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"}
_TABLE = {"type": "object", "propertyNames": {"minLength": 1}, "additionalProperties": _COLLECTION_ID}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"default": _COLLECTION_ID, "entities": _TABLE, "prefixes": _TABLE, "classes": _TABLE},
}
MAX_REPORTED = 5


class BadCollectionsFile(Exception):
    """The mapping file cannot be used; the message names the file and every problem found (up to a few)."""


def collection_rule(base: str, catalog: Catalog, *, split: bool = False, path: Path | None = None) -> CollectionOf:
    if path is not None:
        return _file_rule(path, catalog, base)
    if split:
        return lambda _iri, entity_type: f"{base}_{_top_class(catalog, entity_type)}"
    return lambda _iri, _entity_type: base


def _top_class(catalog: Catalog, entity_type: str) -> str:
    return catalog.entity_type(entity_type).brick_entity_type.split("__", 1)[1].lower()


def _file_rule(path: Path, catalog: Catalog, base: str) -> CollectionOf:
    rules = read_rules(path)
    classes = {_class_name(catalog, path, name): collection for name, collection in rules.get("classes", {}).items()}
    entities, prefixes = rules.get("entities", {}), sorted(rules.get("prefixes", {}).items(), key=lambda p: -len(p[0]))
    fallback = rules.get("default", base)
    by_type: dict[str, str] = {}

    def of_class(entity_type: str) -> str:
        """The collection of the deepest class the file names that the type is (then the first by name)."""
        if entity_type not in by_type:
            fitting = sorted((-catalog.depth(name), name) for name in classes if catalog.is_a(entity_type, name))
            by_type[entity_type] = classes[fitting[0][1]] if fitting else fallback
        return by_type[entity_type]

    def collection_of(iri: str, entity_type: str) -> str:
        if iri in entities:
            return entities[iri]
        return next((collection for prefix, collection in prefixes if iri.startswith(prefix)), None) \
            or of_class(entity_type)

    return collection_of


def read_rules(path: Path) -> dict:
    """The file's rules, checked against SCHEMA; BadCollectionsFile says what is wrong."""
    import jsonschema_rs

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadCollectionsFile(f"{path}: cannot be read: {error}") from error
    rules = _parsed(path, text)
    problems = [_pointer(error.instance_path) + error.message
                for error in jsonschema_rs.validator_for(SCHEMA).iter_errors(rules)]
    if problems:
        raise BadCollectionsFile(f"{path}: " + "; ".join(problems[:MAX_REPORTED])
                                 + (f"; and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED
                                    else ""))
    return rules


def _parsed(path: Path, text: str) -> object:
    if path.suffix.lower() == ".toml":
        import tomllib  # here: 2-3 ms of every import's start otherwise, for an option few use

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise BadCollectionsFile(f"{path}: not valid TOML: {error}") from error
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise BadCollectionsFile(f"{path}: not valid JSON: {error}") from error
    raise BadCollectionsFile(f"{path}: a collections file is .toml or .json")


def _pointer(path: list) -> str:
    """Where in the file, as a prefix of the message: ``/prefixes/urn:a: `` (nothing for the whole file)."""
    return "".join(f"/{part}" for part in path) + ": " if path else ""


def _class_name(catalog: Catalog, path: Path, name: str) -> str:
    """The catalog name of a class the file names as ``AHU``, ``BRICK_1_4__AHU`` or ``brick:AHU``."""
    local = name.removeprefix("brick:").removeprefix("https://brickschema.org/schema/Brick#")
    for candidate in (local, CATALOG_PREFIX + local):
        found = catalog.entity_type(candidate)
        if found is not None:
            return found.name
    closest = difflib.get_close_matches(CATALOG_PREFIX + local, catalog.entity_types, n=3)
    hint = f"; closest known: {', '.join(c[len(CATALOG_PREFIX):] for c in closest)}" if closest else ""
    raise BadCollectionsFile(f"{path}: /classes/{name}: not a Brick class of the catalog{hint}")
