"""The per-item rules of a relationship upsert, in the order they apply, and what they share within one batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from erapi import brick_relationships
from erapi.acl import READ
from erapi.catalog import Catalog, RelationshipType
from erapi.kinds import ENTITIES
from erapi.writes.context import WriteContext
from erapi.writes.rules import Batch, Failures, Rule, each
from erapi.writes.versioning import derived_field_problem


class BatchCatalog:
    """The catalog's answers, remembered for one batch: a batch names few types, most of them many times."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._types: dict[str, RelationshipType | None] = {}
        self._derived: dict[str, dict[str, str]] = {}
        self._misfits: dict[tuple[str, int, tuple[str, ...]], str | None] = {}
        self._fitting: dict[tuple[str, tuple[str, ...] | None, tuple[str, ...] | None], bool] = {}

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

    def fitting(self, name: str, source: tuple[str, ...] | None, destination: tuple[str, ...] | None) -> bool:
        """Whether both ends of a relationship of type ``name`` exist (classes not None) and fit (``misfit``). A
        batch asks about few combinations, most of them many times."""
        key = (name, source, destination)
        try:
            return self._fitting[key]
        except KeyError:
            found = self._fitting[key] = (source is not None and destination is not None
                                          and self.misfit(name, 0, source) is None
                                          and self.misfit(name, 1, destination) is None)
            return found

    def misfit(self, name: str, end: int, classes: tuple[str, ...]) -> str | None:
        """The class that end ``end`` (0 source, 1 destination) of a relationship of type ``name`` requires, when
        an entity of ``classes`` is not of it; None when it fits. An entity of several classes fits when one of
        them does. A batch asks about few combinations, most of them many times."""
        key = (name, end, classes)
        try:
            return self._misfits[key]
        except KeyError:
            relationship_type = self.relationship_type(name)
            required = relationship_type.destination if end else relationship_type.source
            fits = any(self.catalog.is_a(entity_type, required) for entity_type in classes)
            found = self._misfits[key] = None if fits else required
            return found


@dataclass
class RelationshipBatch(Batch):
    """A relationship batch under check, with what its rules look up once for the whole batch."""

    types: BatchCatalog = field(init=False)
    rights: dict[str, frozenset[str]] = field(default_factory=dict)  # on destination collections
    # the classes of the named ends (entityType, then additionalEntityTypes), per collection
    entity_types: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    brick_named: list[int] = field(default_factory=list)  # the items sent with a Brick name, once their turn came

    def __post_init__(self) -> None:
        self.types = BatchCatalog(self.ctx.catalog)


# ---- the rules, in the order they apply ----------------------------------------------------------------------
# Each checks the items at ``indexes`` (those still passing) and gives (index, message) for each that fails.


def known_types(batch: RelationshipBatch, indexes: list[int]) -> Failures:
    items, types = batch.items, batch.types
    # most batches name one or two types: each distinct name is looked up once
    sent = {items[index].get("relationshipType", _BY_BRICK) for index in indexes}
    if all(name is not _BY_BRICK and types.relationship_type(name) is not None for name in sent):
        return ()
    return each(known_type)(batch, indexes)


def known_type(batch: RelationshipBatch, index: int) -> str | None:
    item = batch.items[index]
    if brick_relationships.named_by_brick(item):
        if brick_relationships.catalog_brick_name(batch.ctx.catalog, item["brickRelationshipType"]) is None:
            return brick_relationships.unknown_brick_name_message(item["brickRelationshipType"])
    elif batch.types.relationship_type(item["relationshipType"]) is None:
        return f"Relationship type {item['relationshipType']} not found in the relationship type catalog"
    return None


def sources_in_header_collection(batch: RelationshipBatch, indexes: list[int]) -> Failures:
    collection_id, items = batch.ctx.collection_id, batch.items
    return [(index, f"sourceERCollectionId {items[index]['sourceERCollectionId']} does not match the ercollectionid "
                    f"header {collection_id}")
            for index in indexes if items[index].get("sourceERCollectionId", collection_id) != collection_id]


def derived_fields_unchanged(batch: RelationshipBatch, indexes: list[int]) -> Failures:
    items = batch.items
    # the usual case: the client sends none of them
    sending = [index for index in indexes if not DERIVED_FIELDS.isdisjoint(items[index])]
    return each(derived_field_unchanged)(batch, sending) if sending else ()


def derived_field_unchanged(batch: RelationshipBatch, index: int) -> str | None:
    item = batch.items[index]
    if brick_relationships.named_by_brick(item):  # its type is chosen later, by its ends
        return None
    return derived_field_problem(item, batch.types.derived_fields(item["relationshipType"]))


async def fetch_destination_rights(batch: RelationshipBatch, indexes: list[int]) -> None:
    # the header's collection was authorised for writing already; only other destinations need a check
    ctx, items = batch.ctx, batch.items
    destinations = {items[index].get("destinationERCollectionId", ctx.collection_id) for index in indexes}
    batch.rights = await ctx.acl.access_to_many(destinations - {ctx.collection_id}, ctx.principal)


def destinations_accessible(batch: RelationshipBatch, indexes: list[int]) -> Failures:
    ctx, items = batch.ctx, batch.items
    failures = []
    for index in indexes:
        destination = items[index].get("destinationERCollectionId", ctx.collection_id)
        if destination != ctx.collection_id and ctx.destination_access not in batch.rights[destination]:
            failures.append((index, f"Destination ERCollection {destination} does not exist or is not "
                                    f"{'readable' if ctx.destination_access == READ else 'writable'} by the caller"))
    return failures


async def fetch_end_types(batch: RelationshipBatch, indexes: list[int]) -> None:
    """The classes of every active entity the items name (its entityType, then its additionalEntityTypes), per
    collection: one storage call per collection."""
    ctx, items = batch.ctx, batch.items
    collection_id = ctx.collection_id
    wanted: dict[str, set[str]] = {collection_id: {items[index]["sourceEntityId"] for index in indexes}}
    for index in indexes:
        item = items[index]
        destination = item.get("destinationERCollectionId", collection_id)
        if destination not in wanted:
            wanted[destination] = set()
        wanted[destination].add(item["destinationEntityId"])
    batch.entity_types = {
        collection_id: await ctx.storage.get_active_types(ENTITIES.name, collection_id, ids)
        for collection_id, ids in wanted.items()
    }


def brick_names_resolved(batch: RelationshipBatch, indexes: list[int]) -> Failures:
    items = batch.items
    named = batch.brick_named = [index for index in indexes if brick_relationships.named_by_brick(items[index])]
    return each(brick_name_resolved)(batch, named) if named else ()


def brick_name_resolved(batch: RelationshipBatch, index: int) -> str | None:
    """A relationship sent with its Brick name gets the catalog type that fits its ends (replacing the item)."""
    item = batch.items[index]
    found = []
    for label, entity_id, collection_id in _ends(batch.ctx, item):
        classes = batch.entity_types.get(collection_id, _NO_ENTITIES).get(entity_id)
        if classes is None:
            return _missing_end(label, entity_id, collection_id)
        found.append(classes)
    resolved = brick_relationships.resolve(batch.ctx.catalog, item, *found)
    if isinstance(resolved, str):
        return resolved
    batch.items[index] = resolved
    return None


def ends_exist_and_fit(batch: RelationshipBatch, indexes: list[int]) -> Failures:
    """Both ends are active entities of the classes the relationship type requires (types fetched above)."""
    items, collection_id, fitting = batch.items, batch.ctx.collection_id, batch.types.fitting
    local = batch.entity_types.get(collection_id, _NO_ENTITIES)
    failing = []
    for index in indexes:  # tells which items fail, at the cost of a few look-ups each; ``end_problem`` says why
        item = items[index]
        destination = item.get("destinationERCollectionId", collection_id)
        ends = local if destination == collection_id else batch.entity_types.get(destination, _NO_ENTITIES)
        if not fitting(item["relationshipType"], local.get(item["sourceEntityId"]),
                       ends.get(item["destinationEntityId"])):
            failing.append(index)
    return each(end_problem)(batch, failing) if failing else ()


def end_problem(batch: RelationshipBatch, index: int) -> str | None:
    """Why an end of the item is missing or not of the class its type requires; None when both fit."""
    item = batch.items[index]
    for end, (label, entity_id, collection_id) in enumerate(_ends(batch.ctx, item)):
        classes = batch.entity_types.get(collection_id, _NO_ENTITIES).get(entity_id)
        if classes is None:
            return _missing_end(label, entity_id, collection_id)
        required_class = batch.types.misfit(item["relationshipType"], end, classes)
        if required_class is not None:
            required = batch.ctx.catalog.spelled_like(required_class, item["relationshipType"])
            return (
                f"{label} entity {entity_id} of type {classes[0]} is not a {required} "
                f"as relationship type {item['relationshipType']} requires"
            )
    return None


RELATIONSHIP_RULES: tuple[Rule[RelationshipBatch], ...] = (
    Rule("its type (or Brick name) is in the catalog", known_types),
    Rule("its source collection is the header's", sources_in_header_collection),
    Rule("it sets no derived field to another value", derived_fields_unchanged),
    Rule("its destination collection grants the caller access", destinations_accessible,
         fetch=fetch_destination_rights),
    Rule("a Brick name resolves to one catalog type", brick_names_resolved, fetch=fetch_end_types),
    Rule("both ends exist and are of the classes its type requires", ends_exist_and_fit),
)


# ---- shared by the rules ----------------------------------------------------------------------------------------


def _ends(ctx: WriteContext, item: Mapping[str, Any]) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    return (("Source", item["sourceEntityId"], ctx.collection_id),
            ("Destination", item["destinationEntityId"], destination_collection(ctx, item)))


_NO_ENTITIES: Mapping[str, tuple[str, ...]] = MappingProxyType({})  # a collection none of whose entities was asked for
_BY_BRICK = object()  # the relationshipType of an item that names its Brick relationship instead


def _missing_end(label: str, entity_id: str, collection_id: str) -> str:
    return f"{label} entity {entity_id} not found in ERCollection {collection_id}"


DERIVED_FIELDS = frozenset({"brickRelationshipName", "brickRelationshipType"})  # relationship_derived_fields' keys


def relationship_derived_fields(catalog: Catalog, item: Mapping[str, Any]) -> dict[str, str]:
    relationship_type = catalog.relationship_type(item["relationshipType"])
    return {
        "brickRelationshipName": relationship_type.brick_relationship_name,
        "brickRelationshipType": catalog.spelled_like(
            relationship_type.brick_relationship_type, item["relationshipType"]),
    }


def destination_collection(ctx: WriteContext, item: Mapping[str, Any]) -> str:
    return item.get("destinationERCollectionId", ctx.collection_id)
