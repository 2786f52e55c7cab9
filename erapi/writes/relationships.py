"""Relationship upsert, and the inverses written with it (createInverse=true)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from erapi import brick_relationships
from erapi.acl import READ, WRITE
from erapi.kinds import RELATIONSHIPS
from erapi.timestamps import utc_timestamp
from erapi.writes.context import BatchResult, ItemResult, WriteContext
from erapi.writes.relationship_checks import (
    BatchCatalog,
    destination_collection,
    endpoint_problem,
    fetch_entity_types,
    relationship_request_problem,
    resolve_brick_name,
)
from erapi.writes.versioning import (
    batch_result,
    client_fields,
    first_occurrences,
    system_data,
    unless_unchanged,
    upsert_versioned,
)
from storage_plugins.base import Document


async def upsert_relationships(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
    result = await _upsert_relationship_batch(ctx, items)
    if ctx.create_inverse:
        await _add_inverses(ctx, items, result)
    return result


async def _upsert_relationship_batch(ctx: WriteContext, sent: list[dict[str, Any]]) -> BatchResult:
    failures: dict[int, str] = {}
    items = list(sent)  # items named by their Brick relationship are replaced by their resolved copies
    types = BatchCatalog(ctx.catalog)
    unique = first_occurrences(items, RELATIONSHIPS, failures)
    for index in unique:
        message = relationship_request_problem(ctx, types, items[index])
        if message:
            failures[index] = message

    # the header's collection was authorised for writing already; only other destinations need a check
    destinations = {destination_collection(ctx, items[i]) for i in unique if i not in failures}
    rights = await ctx.acl.access_to_many(destinations - {ctx.collection_id}, ctx.principal)
    for index in unique:
        if index not in failures:
            destination = destination_collection(ctx, items[index])
            if destination != ctx.collection_id and ctx.destination_access not in rights[destination]:
                failures[index] = (
                    f"Destination ERCollection {destination} does not exist or is not "
                    f"{'readable' if ctx.destination_access == READ else 'writable'} by the caller"
                )

    entity_types = await fetch_entity_types(ctx, [items[i] for i in unique if i not in failures])
    for index in unique:
        if index not in failures and brick_relationships.named_by_brick(items[index]):
            resolve_brick_name(ctx, items, index, entity_types, failures)
    for index in unique:
        if index not in failures:
            message = endpoint_problem(ctx, types, items[index], entity_types)
            if message:
                failures[index] = message

    candidates = {items[i]["id"]: items[i] for i in unique if i not in failures}
    now = utc_timestamp()
    outcomes = await upsert_versioned(
        ctx, RELATIONSHIPS, candidates,
        unless_unchanged(lambda item, previous: _relationship_document(ctx, types, item, previous, now)),
    )
    result = batch_result(ctx, RELATIONSHIPS, items, failures, outcomes, "Relationship upserted successfully")
    for item, outcome in zip(sent, result.results):
        if outcome.ok and brick_relationships.named_by_brick(item):  # say which type was chosen
            outcome.details["relationshipType"] = outcome.document["relationshipType"]
    return result


def _relationship_document(ctx: WriteContext, types: BatchCatalog, item: dict, previous: Document | None,
                           now: str) -> Document | str:
    relationship_type = types.relationship_type(item["relationshipType"])
    if previous is not None:
        stored_type = types.relationship_type(previous["relationshipType"])
        if stored_type is not relationship_type:
            return "Restricted property relationshipType is not allowed to change"
    document = client_fields(item)
    document.update(
        sourceERCollectionId=ctx.collection_id,
        destinationERCollectionId=destination_collection(ctx, item),
        **types.derived_fields(item["relationshipType"]),
        isActive=True,
        sysData=system_data(ctx, RELATIONSHIPS, previous, now),
    )
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
