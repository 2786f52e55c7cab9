"""Entity upsert."""

from __future__ import annotations

from typing import Any, Mapping

from erapi.catalog import Catalog
from erapi.kinds import ENTITIES
from erapi.timestamps import utc_timestamp
from erapi.writes.context import BatchResult, WriteContext
from erapi.writes.versioning import (
    batch_result,
    client_fields,
    derived_field_problem,
    first_occurrences,
    system_data,
    unless_unchanged,
    upsert_versioned,
)
from storage_plugins.base import Document


async def upsert_entities(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
    failures: dict[int, str] = {}
    unique = first_occurrences(items, ENTITIES, failures)
    for index in unique:
        entity_type = ctx.catalog.entity_type(items[index]["entityType"])
        if entity_type is None:
            failures[index] = _unknown_entity_type_message(ctx.catalog, items[index]["entityType"])
            continue
        problem = _unknown_additional_type(ctx.catalog, items[index]) or derived_field_problem(
            items[index], _entity_derived_fields(ctx.catalog, items[index]))
        if problem:
            failures[index] = problem
    candidates = {items[i]["id"]: items[i] for i in unique if i not in failures}
    now = utc_timestamp()
    outcomes = await upsert_versioned(
        ctx, ENTITIES, candidates,
        unless_unchanged(lambda item, previous: _entity_document(ctx, item, previous, now)),
    )
    return batch_result(ctx, ENTITIES, items, failures, outcomes, "Entity upserted successfully")


def _unknown_additional_type(catalog: Catalog, item: Mapping[str, Any]) -> str | None:
    for name in item.get("additionalEntityTypes", ()):
        if catalog.entity_type(name) is None:
            return _unknown_entity_type_message(catalog, name, " (additionalEntityTypes)")
    return None


def _unknown_entity_type_message(catalog: Catalog, name: str, where: str = "") -> str:
    closest = catalog.closest_entity_types(name)
    hint = f"; closest known names: {', '.join(closest)}" if closest else ""
    return f"Entity type {name}{where} not found in the entity type catalog{hint}"


def _entity_document(ctx: WriteContext, item: dict, previous: Document | None, now: str) -> Document | str:
    entity_type = ctx.catalog.entity_type(item["entityType"])
    if previous is not None and ctx.catalog.entity_type(previous["entityType"]) is not entity_type:
        return "Restricted property entityType is not allowed to change"
    document = client_fields(item)
    document.update(
        **_entity_derived_fields(ctx.catalog, item),
        isActive=True,
        sysData=system_data(ctx, ENTITIES, previous, now),
    )
    return document


def _entity_derived_fields(catalog: Catalog, item: Mapping[str, Any]) -> dict[str, str]:
    entity_type = catalog.entity_type(item["entityType"])
    return {
        "brickEntityType": catalog.spelled_like(entity_type.brick_entity_type, item["entityType"]),
        "brickEntitySubType": catalog.spelled_like(entity_type.name, item["entityType"]),
    }
