"""The type catalog: Brick entity types with their class hierarchy, and typed relationships between them.

Loaded once at start-up from every ``*.json`` file in ``schemas/catalog/``. Each file holds
``entityTypes`` (``name``, ``brickClass``, direct ``parents``, top-level ``brickEntityType``),
``relationshipTypes`` (``name``, ``sourceEntityType``, ``destinationEntityType``, ``brickRelationshipName``,
``brickRelationshipType``, ``inverse``) and ``aliases`` (old name -> current name, for either kind).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import orjson

from erapi.errors import ConfigurationError
from erapi.packaged import package_dir

SCHEMAS_DIR = package_dir("schemas")
CATALOG_DIR = SCHEMAS_DIR / "catalog"
MAX_REMEMBERED_SUGGESTIONS = 10_000


@dataclass(frozen=True)
class EntityType:
    name: str
    brick_class: str
    parents: tuple[str, ...]
    brick_entity_type: str
    ancestors: frozenset[str]  # every class above this one, itself excluded
    document: dict[str, Any]


@dataclass(frozen=True)
class RelationshipType:
    name: str
    source: str
    destination: str
    brick_relationship_name: str
    brick_relationship_type: str
    inverse: str | None
    document: dict[str, Any]


class Catalog:
    """Lookups by name (aliases resolved) and subclass checks, all in memory and O(1)."""

    def __init__(self, entity_documents: Iterable[dict], relationship_documents: Iterable[dict],
                 aliases: dict[str, str]) -> None:
        self.aliases = dict(aliases)
        raw_entities = {doc["name"]: doc for doc in entity_documents}
        self.entity_types = {name: _entity_type(name, raw_entities) for name in sorted(raw_entities)}
        self.relationship_types = {
            doc["name"]: RelationshipType(
                name=doc["name"],
                source=doc["sourceEntityType"],
                destination=doc["destinationEntityType"],
                brick_relationship_name=doc["brickRelationshipName"],
                brick_relationship_type=doc["brickRelationshipType"],
                inverse=doc.get("inverse"),
                document=doc,
            )
            for doc in sorted(relationship_documents, key=lambda doc: doc["name"])
        }
        self._check_references()
        self.children: dict[str, list[str]] = {name: [] for name in self.entity_types}
        for entity_type in self.entity_types.values():
            for parent in entity_type.parents:
                self.children[parent].append(entity_type.name)
        self.by_brick_relationship: dict[str, list[RelationshipType]] = {}
        for relationship_type in self.relationship_types.values():
            self.by_brick_relationship.setdefault(relationship_type.brick_relationship_type, []).append(
                relationship_type)
        self._depths: dict[str, int] = {}
        # the suggestions for an unknown name, remembered: an import refuses the same few names many times, and
        # each search compares the name with every class (milliseconds apiece)
        self._closest: dict[tuple[str, int], list[str]] = {}
        self._class_names: dict[str, list[str]] = {}  # per name prefix (BRICK_1_4), the class part of each name
        for name in self.entity_types:
            prefix, _, class_name = name.rpartition("__")
            self._class_names.setdefault(prefix, []).append(class_name)

    def entity_type(self, name: str) -> EntityType | None:
        return self.entity_types.get(name) or self.entity_types.get(self.aliases.get(name, ""))

    def relationship_type(self, name: str) -> RelationshipType | None:
        return self.relationship_types.get(name) or self.relationship_types.get(self.aliases.get(name, ""))

    def is_a(self, entity_type: str, class_name: str) -> bool:
        """True when ``entity_type`` is ``class_name`` or one of its subclasses (aliases resolved)."""
        found = self.entity_type(entity_type)
        wanted = self.entity_type(class_name)
        return found is not None and wanted is not None and (found is wanted or wanted.name in found.ancestors)

    def descendants(self, name: str) -> list[str]:
        """The class and every class below it, sorted."""
        found, pending = set(), [name]
        while pending:
            current = pending.pop()
            if current not in found:
                found.add(current)
                pending.extend(self.children.get(current, []))
        return sorted(found)

    def closest_entity_types(self, name: str, count: int = 3) -> list[str]:
        """The known entity type names nearest to an unknown one, in the scheme of ``name`` when it has one
        (``BRICK_1_4__Electrical_Power_Sensor`` -> ``BRICK_1_4__Electric_Power_Sensor``, ...)."""
        found = self._closest.get((name, count))
        if found is None:
            found = self._search_closest(name, count)
            if len(self._closest) < MAX_REMEMBERED_SUGGESTIONS:  # bounded: the names come from clients
                self._closest[name, count] = found
        return found

    def _search_closest(self, name: str, count: int) -> list[str]:
        """difflib's close matches (ratio 0.75 or more), among the names that rapidfuzz's ratio, an upper bound of
        difflib's, does not rule out: the same names, two orders of magnitude sooner (8 ms -> 0.1 ms for 1,361
        names; an import with 25 unknown classes spent 0.2 s of the service's time here)."""
        from rapidfuzz import fuzz, process

        prefix, _, class_name = name.rpartition("__")
        known = self._class_names.get(prefix)
        if known is None:
            prefix, known = next(iter(self._class_names.items()), ("", []))
        # fuzz.ratio is 2 * LCS / total length; difflib's matching blocks are a common subsequence, so its ratio is
        # never higher (the margin only guards against rounding)
        candidates = [found for found, _score, _index in
                      process.extract(class_name, known, scorer=fuzz.ratio, limit=None, score_cutoff=74.9)]
        return [f"{prefix}__{found}" for found in difflib.get_close_matches(class_name, candidates, count, 0.75)]

    def depth(self, name: str) -> int:
        """The number of ``rdfs:subClassOf`` steps on the longest path from the class up to a root class."""
        try:
            return self._depths[name]
        except KeyError:
            parents = self.entity_types[name].parents
            depth = self._depths[name] = 1 + max(map(self.depth, parents)) if parents else 0
            return depth

    def relationship_types_between(self, source: str | None, destination: str | None) -> list[RelationshipType]:
        """Relationship types an entity of class ``source`` may have towards one of class ``destination``.

        Subclass-aware: a type from Equipment to Location serves an AHU and an HVAC_Zone. None means any.
        """
        return [
            relationship_type
            for relationship_type in self.relationship_types.values()
            if (source is None or self.is_a(source, relationship_type.source))
            and (destination is None or self.is_a(destination, relationship_type.destination))
        ]

    def client_name(self, name: str, sent: str) -> str:
        """A type name to store for a client who spoke in ``sent``'s scheme, when that scheme has a name for it."""
        spelled = self.spelled_like(name, sent)
        found = self.relationship_type(spelled) or self.entity_type(spelled)
        return spelled if found is not None and found.name == name else name

    def spelled_like(self, name: str, sent: str) -> str:
        """``name`` in the naming scheme of ``sent``, the name a client used.

        A client that sends an old alias (``BRICK_0_4__AHU``) keeps seeing the old prefix in what the
        service derives for it (``BRICK_0_4__Equipment``), so existing clients see no change.
        """
        if sent not in self.aliases:
            return name
        return sent.split("__", 1)[0] + "__" + name.split("__", 1)[1]

    def _check_references(self) -> None:
        for relationship in self.relationship_types.values():
            for end in (relationship.source, relationship.destination):
                if end not in self.entity_types:
                    raise ConfigurationError(f"relationship type {relationship.name} names unknown class {end}")


def _entity_type(name: str, raw: dict[str, dict]) -> EntityType:
    doc = raw[name]
    ancestors: set[str] = set()
    pending = list(doc.get("parents", []))
    while pending:
        parent = pending.pop()
        if parent in ancestors:
            continue
        if parent not in raw:
            raise ConfigurationError(f"entity type {name} names unknown parent {parent}")
        ancestors.add(parent)
        pending.extend(raw[parent].get("parents", []))
    return EntityType(
        name=name,
        brick_class=doc["brickClass"],
        parents=tuple(doc.get("parents", [])),
        brick_entity_type=doc["brickEntityType"],
        ancestors=frozenset(ancestors),
        document=doc,
    )


def spellings(catalog: Catalog, names: Iterable[str]) -> frozenset[str]:
    """The catalog names and every alias that stands for one of them: a stored document keeps the name its
    client sent, so a query by type must match each spelling."""
    wanted = set(names)
    return frozenset(wanted | {alias for alias, target in catalog.aliases.items() if target in wanted})


def load_catalog(directory: Path = CATALOG_DIR) -> Catalog:
    entities: list[dict] = []
    relationships: list[dict] = []
    aliases: dict[str, str] = {}
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ConfigurationError(f"no type catalog files in {directory}")
    for path in files:
        content = orjson.loads(path.read_bytes())
        entities.extend(content.get("entityTypes", []))
        relationships.extend(content.get("relationshipTypes", []))
        aliases.update(content.get("aliases", {}))
    return Catalog(entities, relationships, aliases)
