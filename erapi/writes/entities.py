"""Entity upsert."""

from __future__ import annotations

import functools
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping

from erapi.catalog import Catalog
from erapi.kinds import ENTITIES
from erapi.writes.context import BatchResult, WriteContext
from erapi.writes.rules import Batch, Rule, each, upsert_checked
from erapi.writes.versioning import client_fields, derived_field_problem, system_data
from storage_plugins.base import Document


async def upsert_entities(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
    return await upsert_checked(
        Batch(ctx, items), ENTITIES, ENTITY_RULES,
        functools.partial(_entity_document, ctx),
        "Entity upserted successfully",
    )


# ---- the rules, in the order they apply ----------------------------------------------------------------------


def _known_entity_type(batch: Batch, index: int) -> str | None:
    name = batch.items[index]["entityType"]
    if batch.ctx.catalog.entity_type(name) is None:
        return _unknown_entity_type_message(batch.ctx.catalog, name)
    return None


def _known_additional_types(batch: Batch, index: int) -> str | None:
    for name in batch.items[index].get("additionalEntityTypes", ()):
        if batch.ctx.catalog.entity_type(name) is None:
            return _unknown_entity_type_message(batch.ctx.catalog, name, " (additionalEntityTypes)")
    return None


def _derived_fields_unchanged(batch: Batch, index: int) -> str | None:
    item = batch.items[index]
    return derived_field_problem(item, _entity_derived_fields(batch.ctx.catalog, item["entityType"]))


ENTITY_RULES: tuple[Rule[Batch], ...] = (
    Rule("its entity type is in the catalog", each(_known_entity_type)),
    Rule("its additional entity types are in the catalog", each(_known_additional_types)),
    Rule("it sets no derived field to another value", each(_derived_fields_unchanged)),
)


def _unknown_entity_type_message(catalog: Catalog, name: str, where: str = "") -> str:
    closest = catalog.closest_entity_types(name)
    hint = f"; closest known names: {', '.join(closest)}" if closest else ""
    return f"Entity type {name}{where} not found in the entity type catalog{hint}"


def _entity_document(ctx: WriteContext, item: dict, previous: Document | None, now: str) -> Document | str:
    catalog, sent_type = ctx.catalog, item["entityType"]
    if previous is not None and catalog.entity_type(previous["entityType"]) is not catalog.entity_type(sent_type):
        return "Restricted property entityType is not allowed to change"
    document = client_fields(item)
    document.update(_entity_derived_fields(catalog, sent_type))
    document["isActive"] = True
    document["sysData"] = system_data(ctx, ENTITIES, previous, now)
    return document


@lru_cache(maxsize=4096)
def _entity_derived_fields(catalog: Catalog, sent_type: str) -> Mapping[str, str]:
    """The fields the service derives from an entity type a client sent (one the catalog knows), read-only: an
    import sends the same few hundred types thousands of times."""
    entity_type = catalog.entity_type(sent_type)
    return MappingProxyType({
        "brickEntityType": catalog.spelled_like(entity_type.brick_entity_type, sent_type),
        "brickEntitySubType": catalog.spelled_like(entity_type.name, sent_type),
    })
