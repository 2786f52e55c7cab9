"""The per-item rules of a relationship upsert, and the catalog answers they share within one batch."""

from __future__ import annotations

from typing import Any, Mapping

from erapi import brick_relationships
from erapi.catalog import Catalog, RelationshipType
from erapi.kinds import ENTITIES
from erapi.writes.context import WriteContext
from erapi.writes.versioning import derived_field_problem


class BatchCatalog:
    """The catalog's answers, remembered for one batch: a batch names few types, most of them many times."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._types: dict[str, RelationshipType | None] = {}
        self._derived: dict[str, dict[str, str]] = {}
        self._is_a: dict[tuple[str, str], bool] = {}

    def relationship_type(self, name: str) -> RelationshipType | None:
        try:
            return self._types[name]
        except KeyError:
            found = self._types[name] = self.catalog.relationship_type(name)
            return found

    def derived_fields(self, name: str) -> dict[str, str]:
        """The relationship's derived fields for a type sent as ``name`` (a type the catalog has)."""
        try:
            return self._derived[name]
        except KeyError:
            found = self._derived[name] = relationship_derived_fields(self.catalog, {"relationshipType": name})
            return found

    def is_a(self, entity_type: str, class_name: str) -> bool:
        key = (entity_type, class_name)
        try:
            return self._is_a[key]
        except KeyError:
            found = self._is_a[key] = self.catalog.is_a(entity_type, class_name)
            return found


def resolve_brick_name(ctx: WriteContext, items: list[dict[str, Any]], index: int,
                        entity_types: dict[str, dict[str, str]], failures: dict[int, str]) -> None:
    item = items[index]
    ends = ((item["sourceEntityId"], ctx.collection_id, "Source"),
            (item["destinationEntityId"], destination_collection(ctx, item), "Destination"))
    found = [entity_types.get(collection_id, {}).get(entity_id) for entity_id, collection_id, _ in ends]
    for (entity_id, collection_id, label), entity_type in zip(ends, found):
        if entity_type is None:
            failures[index] = f"{label} entity {entity_id} not found in ERCollection {collection_id}"
            return
    resolved = brick_relationships.resolve(ctx.catalog, item, *found)
    if isinstance(resolved, str):
        failures[index] = resolved
    else:
        items[index] = resolved


def relationship_request_problem(ctx: WriteContext, types: BatchCatalog, item: Mapping[str, Any]) -> str | None:
    if brick_relationships.named_by_brick(item):
        return _brick_named_request_problem(ctx, item)
    relationship_type = types.relationship_type(item["relationshipType"])
    if relationship_type is None:
        return f"Relationship type {item['relationshipType']} not found in the relationship type catalog"
    return _source_collection_problem(ctx, item) or derived_field_problem(
        item, types.derived_fields(item["relationshipType"]))


def _source_collection_problem(ctx: WriteContext, item: Mapping[str, Any]) -> str | None:
    source_collection = item.get("sourceERCollectionId", ctx.collection_id)
    if source_collection != ctx.collection_id:
        return (
            f"sourceERCollectionId {source_collection} does not match the ercollectionid header "
            f"{ctx.collection_id}"
        )
    return None


def _brick_named_request_problem(ctx: WriteContext, item: Mapping[str, Any]) -> str | None:
    if brick_relationships.catalog_brick_name(ctx.catalog, item["brickRelationshipType"]) is None:
        return brick_relationships.unknown_brick_name_message(item["brickRelationshipType"])
    return _source_collection_problem(ctx, item)


def relationship_derived_fields(catalog: Catalog, item: Mapping[str, Any]) -> dict[str, str]:
    relationship_type = catalog.relationship_type(item["relationshipType"])
    return {
        "brickRelationshipName": relationship_type.brick_relationship_name,
        "brickRelationshipType": catalog.spelled_like(
            relationship_type.brick_relationship_type, item["relationshipType"]),
    }


def destination_collection(ctx: WriteContext, item: Mapping[str, Any]) -> str:
    return item.get("destinationERCollectionId", ctx.collection_id)


async def fetch_entity_types(ctx: WriteContext, items: list[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """The type of every active entity the items name, per collection: one storage call per collection."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        wanted.setdefault(ctx.collection_id, set()).add(item["sourceEntityId"])
        wanted.setdefault(destination_collection(ctx, item), set()).add(item["destinationEntityId"])
    return {
        collection_id: await ctx.storage.get_active_types(ENTITIES.name, collection_id, ids)
        for collection_id, ids in wanted.items()
    }


def endpoint_problem(ctx: WriteContext, types: BatchCatalog, item: Mapping[str, Any],
                     entity_types: dict[str, dict[str, str]]) -> str | None:
    relationship_type = types.relationship_type(item["relationshipType"])
    ends = (
        ("Source", item["sourceEntityId"], ctx.collection_id, relationship_type.source),
        ("Destination", item["destinationEntityId"], destination_collection(ctx, item), relationship_type.destination),
    )
    for label, entity_id, collection_id, required_class in ends:
        entity_type = entity_types.get(collection_id, {}).get(entity_id)
        if entity_type is None:
            return f"{label} entity {entity_id} not found in ERCollection {collection_id}"
        if not types.is_a(entity_type, required_class):
            required = ctx.catalog.spelled_like(required_class, item["relationshipType"])
            return (
                f"{label} entity {entity_id} of type {entity_type} is not a {required} "
                f"as relationship type {item['relationshipType']} requires"
            )
    return None
