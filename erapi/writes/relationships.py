"""Relationship upsert, and the inverses written with it (createInverse=true)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import replace
from typing import Any

from erapi import brick_relationships
from erapi.acl import WRITE
from erapi.kinds import RELATIONSHIPS
from erapi.writes.context import BatchResult, ItemResult, WriteContext
from erapi.writes.relationship_checks import (
    RELATIONSHIP_RULES,
    BatchCatalog,
    RelationshipBatch,
    destination_collection,
)
from erapi.writes.rules import upsert_checked
from erapi.writes.versioning import client_fields, system_data
from storage_plugins.base import Document


async def upsert_relationships(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
    result = await _upsert_relationship_batch(ctx, items)
    if ctx.create_inverse:
        await _add_inverses(ctx, items, result)
    return result


async def _upsert_relationship_batch(ctx: WriteContext, sent: list[dict[str, Any]]) -> BatchResult:
    batch = RelationshipBatch(ctx, list(sent))  # a copy: a rule replaces a Brick-named item by its resolved copy
    result = await upsert_checked(
        batch, RELATIONSHIPS, RELATIONSHIP_RULES,
        functools.partial(_relationship_document, ctx, batch.types),
        "Relationship upserted successfully",
    )
    for index in batch.brick_named:  # say which type was chosen
        outcome = result.results[index]
        if outcome.ok:
            outcome.details = {**(outcome.details or {}), "relationshipType": outcome.document["relationshipType"]}
    return result


def _relationship_document(ctx: WriteContext, types: BatchCatalog, item: dict, previous: Document | None,
                           now: str) -> Document | str:
    if previous is not None:
        if types.relationship_type(previous["relationshipType"]) is not types.relationship_type(item["relationshipType"]):
            return "Restricted property relationshipType is not allowed to change"
    document = client_fields(item)
    document["sourceERCollectionId"] = ctx.collection_id
    document["destinationERCollectionId"] = destination_collection(ctx, item)
    document.update(types.derived_fields(item["relationshipType"]))
    document["isActive"] = True
    document["sysData"] = system_data(ctx, RELATIONSHIPS, previous, now)
    return document


INVERSE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://erapi.example/relationships/inverse")


def inverse_id(collection_id: str, relationship_id: str) -> str:
    """The id of a relationship's inverse: the same for the same relationship, whoever asks and when."""
    return str(uuid.uuid5(INVERSE_NAMESPACE, f"{collection_id}/{relationship_id}"))


async def _add_inverses(ctx: WriteContext, items: list[dict[str, Any]], result: BatchResult) -> None:
    """Write the inverse of every relationship just written, in the collection of its source end (the
    original's destination), and report each as an item of its own."""
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for item, outcome in zip(items, list(result.results)):
        if not outcome.ok:
            continue
        item = {**item, "relationshipType": outcome.document["relationshipType"]}
        relationship_type = ctx.catalog.relationship_type(item["relationshipType"])
        if relationship_type.inverse is None:
            result.results.append(ItemResult(inverse_id(ctx.collection_id, item["id"]), False,
                                             f"Relationship type {item['relationshipType']} has no inverse"))
            continue
        inverse = _inverse_item(ctx, item, relationship_type.inverse)
        by_collection.setdefault(inverse["sourceERCollectionId"], []).append(inverse)
    for collection_id, inverses in by_collection.items():
        if collection_id != ctx.collection_id and WRITE not in await ctx.acl.access(collection_id, ctx.principal):
            message = f"ERCollection {collection_id} is not registered or the caller has no write grant on it"
            result.results.extend(ItemResult(inverse["id"], False, message) for inverse in inverses)
            continue
        written = await _upsert_relationship_batch(replace(ctx, collection_id=collection_id), inverses)
        result.results.extend(written.results)


def _inverse_item(ctx: WriteContext, item: dict[str, Any], inverse_type: str) -> dict[str, Any]:
    destination = destination_collection(ctx, item)
    inverse = {
        "id": inverse_id(ctx.collection_id, item["id"]),
        "sourceEntityId": item["destinationEntityId"],
        "destinationEntityId": item["sourceEntityId"],
        "relationshipType": ctx.catalog.client_name(inverse_type, item["relationshipType"]),
        "sourceERCollectionId": destination,
        "destinationERCollectionId": ctx.collection_id,
        "inverseOf": item["id"],
    }
    if "relationshipName" in item:
        inverse["relationshipName"] = item["relationshipName"]
    return inverse
