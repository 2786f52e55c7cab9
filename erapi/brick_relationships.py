"""Relationships sent by their Brick name alone: the catalog type that fits the classes of both ends.

A relationship item may carry ``brickRelationshipType`` (``BRICK_1_4__isFedBy``, or a Brick 0.4 starter
name such as ``BRICK_0_4__isFedBy`` or ``BRICK_0_4__contains``) instead of ``relationshipType``. Of the
catalog types of that Brick relationship, the service keeps those whose source and destination classes are
the ends' classes or their ancestors, and picks (docs/API.md, "Relationships by their Brick name"):

1. the most specific: a type is dropped when another fitting type's ends are both at or below its ends;
2. among several left, the one whose ends lie deepest in the class hierarchy (the sum of both ends' depths);
3. then the first name in alphabetical order.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from erapi.catalog import Catalog, RelationshipType

# The Brick 0.4 starter set's prefix, and its relationships that Brick 1.x renamed (as in erapi.catalog_build)
STARTER_PREFIX = "BRICK_0_4__"
RENAMED_RELATIONSHIPS = {"contains": "isLocationOf", "isLocatedIn": "hasLocation"}


def named_by_brick(item: Mapping[str, Any]) -> bool:
    """True for an item that names its Brick relationship instead of a catalog relationship type."""
    return "relationshipType" not in item


def catalog_brick_name(catalog: Catalog, sent: str) -> str | None:
    """The catalog's ``brickRelationshipType`` for the Brick name a client sent; None when it has none."""
    if sent in catalog.by_brick_relationship:
        return sent
    if not sent.startswith(STARTER_PREFIX) or not catalog.by_brick_relationship:
        return None
    name = sent[len(STARTER_PREFIX):]
    current_prefix = next(iter(catalog.by_brick_relationship)).split("__", 1)[0]
    current = f"{current_prefix}__{RENAMED_RELATIONSHIPS.get(name, name)}"
    return current if current in catalog.by_brick_relationship else None


def unknown_brick_name_message(sent: str) -> str:
    return f"Brick relationship {sent} not found in the relationship type catalog"


def choose(catalog: Catalog, brick_name: str, source_types: tuple[str, ...],
           destination_types: tuple[str, ...]) -> RelationshipType | None:
    """The type of Brick relationship ``brick_name`` (a catalog name) for ends of these classes (an entity's
    ``entityType`` and its ``additionalEntityTypes``: a type fits when one class of each end is at or below its
    end); None when none fits."""
    fitting = [
        candidate for candidate in catalog.by_brick_relationship[brick_name]
        if any(catalog.is_a(source, candidate.source) for source in source_types)
        and any(catalog.is_a(destination, candidate.destination) for destination in destination_types)
    ]
    most_specific = [candidate for candidate in fitting if not any(
        other is not candidate and catalog.is_a(other.source, candidate.source)
        and catalog.is_a(other.destination, candidate.destination) for other in fitting)]
    return min(most_specific, default=None, key=lambda candidate: (
        -(catalog.depth(candidate.source) + catalog.depth(candidate.destination)), candidate.name))


def stored_name(catalog: Catalog, chosen: RelationshipType, sent: str) -> str:
    """The name to store: a starter-set client keeps the starter's name when it has one for the chosen type."""
    if sent.startswith(STARTER_PREFIX):
        ends = "_".join(end.split("__", 1)[1] for end in (chosen.source, chosen.destination))
        starter = f"{sent}_{ends}"
        if catalog.aliases.get(starter) == chosen.name:
            return starter
    return chosen.name


def resolve(catalog: Catalog, item: Mapping[str, Any], source_types: tuple[str, ...],
            destination_types: tuple[str, ...]) -> dict[str, Any] | str:
    """The item with the chosen ``relationshipType`` (its ``brickRelationshipType`` left to the service),
    or the item's failure message naming the relationship and both ends' types (``entityType``)."""
    chosen, name = _resolved_name(catalog, item["brickRelationshipType"], source_types, destination_types)
    if not chosen:
        return name
    resolved = dict(item)
    del resolved["brickRelationshipType"]
    resolved["relationshipType"] = name
    return resolved


@lru_cache(maxsize=65536)
def _resolved_name(catalog: Catalog, sent: str, source_types: tuple[str, ...],
                   destination_types: tuple[str, ...]) -> tuple[bool, str]:
    """(True, the relationshipType to store) for Brick relationship ``sent`` between ends of these classes, else
    (False, the failure message). Remembered: an import sends the same few names and class pairs thousands of
    times."""
    brick_name = catalog_brick_name(catalog, sent)
    if brick_name is None:
        return False, unknown_brick_name_message(sent)
    chosen = choose(catalog, brick_name, source_types, destination_types)
    if chosen is None:
        return False, (f"No relationship type of Brick relationship {sent} joins a source of type {source_types[0]} "
                       f"to a destination of type {destination_types[0]}")
    return True, stored_name(catalog, chosen, sent)
