"""Path patterns: a start, then hops (a relationship, a direction, a class filter on what is reached), matched
a whole frontier per storage call (erapi/graph.py); the answer is the distinct end entities or every path.

The pattern has been validated against ``schemas/graph-query.json``; what the schema cannot know (names of the
catalog, which relationships are transitive) is checked here, each refusal naming the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from erapi.catalog import Catalog
from erapi.graph import (EDGES_PER_NODE, Key, Step, Visibility, entities_of, entity_classes, hop, invalid, of_classes,
                         relationship_types, step, transitive)
from storage_plugins.base import Document, DocumentQuery, Storage

MAX_MATCHES = 10_000  # entities reached by one hop, start entities, or paths: beyond, the pattern is refused
Link = tuple[Key, Key | None]  # (the entity a match came from, the relationship followed; None: a transitive chain)


@dataclass(frozen=True)
class Hop:
    step: Step
    classes: frozenset[str] | None
    transitive: bool


@dataclass(frozen=True)
class Pattern:
    start_id: str | None
    start_classes: frozenset[str] | None
    hops: tuple[Hop, ...]
    paths: bool


def _names(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def compile_pattern(catalog: Catalog, body: dict[str, Any]) -> Pattern:
    """The pattern with the catalog's names resolved; a 400 naming the field for a name the catalog lacks."""
    hops = []
    for index, item in enumerate(body["hops"]):
        where = f"/hops/{index}"
        types = [found for name in _names(item["relationshipType"])
                 for found in relationship_types(catalog, name, f"{where}/relationshipType")]
        if item.get("transitive", False) and not transitive(types):
            raise invalid(f"{where}/transitive", "only transitive Brick relationships (feeds, isFedBy, hasPart, "
                                                 "isPartOf, hasLocation, isLocationOf) can be followed transitively")
        classes = frozenset().union(*(entity_classes(catalog, name, f"{where}/entityType")
                                      for name in _names(item.get("entityType", [])))) or None
        hops.append(Hop(step(catalog, item.get("direction", "outgoing"), types), classes,
                        item.get("transitive", False)))
    start = body["start"]
    classes = entity_classes(catalog, start["entityType"], "/start/entityType") if "entityType" in start else None
    return Pattern(start.get("entityId"), classes, tuple(hops), body.get("return", "entities") == "paths")


class Matcher:
    """Matches one pattern for one caller: each hop is one storage call per step of the walk, for the whole
    frontier; a class filter reads the reached entities in one more."""

    def __init__(self, storage: Storage, visibility: Visibility) -> None:
        self.storage = storage
        self.visibility = visibility

    async def starts(self, pattern: Pattern, collection_id: str) -> set[Key]:
        if pattern.start_id is not None:
            return {(collection_id, pattern.start_id)}
        query = DocumentQuery(types=pattern.start_classes, additional_types=True, limit=MAX_MATCHES + 1)
        found = await self.storage.list_current("entities", collection_id, query)
        if len(found) > MAX_MATCHES:
            raise invalid("/start/entityType", f"more than {MAX_MATCHES} entities of this class: start from fewer")
        return {(collection_id, document["id"]) for document in found}

    async def links(self, pattern: Pattern, starts: set[Key]) -> list[dict[Key, list[Link]]]:
        """Per hop, each entity it matched and where each of its matches came from."""
        matched: list[dict[Key, list[Link]]] = []
        frontier = starts
        for index, item in enumerate(pattern.hops):
            links = await (self._chain(item.step, frontier, index) if item.transitive
                           else self._single(item.step, frontier, index))
            if item.classes is not None and links:
                documents = await entities_of(self.storage, links)
                links = {key: came for key, came in links.items()
                         if key in documents and of_classes(documents[key], item.classes)}
            matched.append(links)
            frontier = set(links)
        return matched

    async def _single(self, how: Step, frontier: set[Key], index: int) -> dict[Key, list[Link]]:
        found, cut = await hop(self.storage, self.visibility, how, frontier, EDGES_PER_NODE * MAX_MATCHES)
        links: dict[Key, list[Link]] = {}
        for edge in found:
            for origin, reached in how.follow(edge, frontier):
                links.setdefault(reached, []).append((origin, (edge["sourceERCollectionId"], edge["id"])))
        _bounded(cut or len(links) > MAX_MATCHES, index)
        return links

    async def _chain(self, how: Step, frontier: set[Key], index: int) -> dict[Key, list[Link]]:
        """One or more steps: each entity reached, with every frontier entity it is reached from."""
        origins: dict[Key, set[Key]] = {}
        current = set(frontier)
        while current:
            found, cut = await hop(self.storage, self.visibility, how, current, EDGES_PER_NODE * MAX_MATCHES)
            grown = set()
            for edge in found:
                for origin, reached in how.follow(edge, current):
                    carried = ({origin} if origin in frontier else set()) | origins.get(origin, set())
                    if not carried <= origins.get(reached, set()):
                        origins.setdefault(reached, set()).update(carried)
                        grown.add(reached)
            _bounded(cut or len(origins) > MAX_MATCHES, index)
            current = grown
        return {key: [(origin, None) for origin in sorted(came)] for key, came in origins.items()}

    async def entities(self, matched: list[dict[Key, list[Link]]]) -> list[tuple[Key, Document]]:
        documents = await entities_of(self.storage, matched[-1])
        return sorted(documents.items())


def _bounded(over: bool, index: int) -> None:
    if over:
        raise invalid(f"/hops/{index}", f"this hop reaches more than {MAX_MATCHES} entities: narrow the pattern "
                                        f"(relationshipType, entityType) or start from fewer entities")


def paths(matched: list[dict[Key, list[Link]]], starts: set[Key]) -> list[tuple[list[Key], list[Key | None]]]:
    """Every path through the matches, as (entities, relationships followed), sorted by ``path_position``."""
    partial: dict[Key, list[tuple[list[Key], list[Key | None]]]] = {key: [([key], [])] for key in starts}
    for index, links in enumerate(matched):
        extended: dict[Key, list[tuple[list[Key], list[Key | None]]]] = {}
        count = 0
        for reached, came in links.items():
            for origin, relationship in came:
                for entities, relationships in partial.get(origin, ()):
                    extended.setdefault(reached, []).append(([*entities, reached], [*relationships, relationship]))
                    count += 1
            _bounded(count > MAX_MATCHES, index)
        partial = extended
    return sorted((path for found in partial.values() for path in found), key=lambda path: path_position(*path))


def path_position(entities: list[Key], relationships: list[Key | None]) -> list[list[str]]:
    """A path's sort key and paging position: its entities, then its relationships (two relationships may join
    the same two entities), a transitive hop's None as ["", ""] so that every part compares."""
    return [list(key) for key in entities] + [list(key) if key else ["", ""] for key in relationships]
