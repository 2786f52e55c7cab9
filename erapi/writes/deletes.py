"""Deletes: a new version with isActive false, of one relationship, or of one entity and (cascade) its relationships."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import structlog

from erapi.acl import READ, WRITE
from erapi.errors import Conflict, Forbidden, NotFound, shown
from erapi.kinds import ENTITIES, RELATIONSHIPS, Kind
from erapi.preconditions import EXPECTED_VERSION, raise_if_mismatch, version_problem
from erapi.timestamps import utc_timestamp
from erapi.writes.context import WriteContext
from erapi.writes.versioning import is_active, read_current, system_data, upsert_versioned
from storage_plugins.base import Document, EdgeQuery

MAX_CASCADE = 10_000  # relationships one entity delete may deactivate
MAX_LISTED_REFERENCES = 10  # relationship ids named in a refusal


@dataclass
class Deactivation:
    kind: Kind
    collection_id: str  # where the document lives
    id: str
    document: Document  # the new, inactive version
    message: str


@dataclass
class DeleteResult:
    transaction_id: str
    deactivated: list[Deactivation] = field(default_factory=list)  # the entity first, then its relationships


async def delete_relationship(ctx: WriteContext, relationship_id: str, expected: int | None = None) -> DeleteResult:
    """Soft-delete one relationship of the context's collection; NotFound when it is absent or inactive,
    PreconditionFailed when ``expected`` (If-Match) is not its version."""
    await read_current(ctx.storage, RELATIONSHIPS, ctx.collection_id, relationship_id)  # may roll forward
    outcome = (await _deactivate(ctx, RELATIONSHIPS, [relationship_id], expected=expected))[relationship_id]
    raise_if_mismatch(outcome)
    if isinstance(outcome, str):
        raise NotFound(outcome)
    return DeleteResult(ctx.transaction_id, [
        Deactivation(RELATIONSHIPS, ctx.collection_id, relationship_id, outcome, "Relationship deleted")])


async def delete_entity(ctx: WriteContext, entity_id: str, cascade: bool, expected: int | None = None) -> DeleteResult:
    """Soft-delete one entity. Active relationships referencing it, as source or as destination and from any
    collection, refuse the delete (Conflict) unless ``cascade``: then each is deactivated in the collection
    it lives in, which needs a write grant on every one of them (Forbidden otherwise; nothing is written) --
    except for the owner of the entity's collection, who can always delete its entities: a relationship
    into a collection exists by the read grant its owner gave, and a grant since revoked must not pin the
    entity for ever.
    """
    entity = await read_current(ctx.storage, ENTITIES, ctx.collection_id, entity_id)
    if expected is not None:  # a precondition comes before what the delete itself would refuse
        raise_if_mismatch(version_problem(ENTITIES, {"id": entity_id, EXPECTED_VERSION: expected}, entity))
    if entity is None or not is_active(entity):
        raise NotFound(f"Entity {shown(entity_id)} not found in ERCollection {ctx.collection_id}")
    references = EdgeQuery(ctx.collection_id, entity_id, limit=None)
    counts = await ctx.storage.count_edges(references)
    total = sum(counts.values())
    rights = await ctx.acl.access_to_many(set(counts) - {ctx.collection_id}, ctx.principal)
    rights[ctx.collection_id] = frozenset({READ, WRITE})  # the caller was authorised to write it
    owner = (await ctx.acl.collection(ctx.collection_id)).owner == ctx.principal
    if total and not cascade:
        readable = frozenset(c for c in counts if READ in rights[c])
        listed = await ctx.storage.find_edges(replace(references, source_collections=readable,
                                                       limit=MAX_LISTED_REFERENCES)) if readable else []
        raise Conflict(_referenced_message(entity_id, total, listed))
    if total > MAX_CASCADE:
        raise Conflict(f"Entity {shown(entity_id)} is referenced by {total} active relationships; cascade=true "
                       f"deactivates at most {MAX_CASCADE}")
    blocked = [] if owner else sorted(c for c in counts if WRITE not in rights[c])
    if blocked:
        # collections the caller cannot read stay unnamed: their existence is not the caller's business
        named = [c for c in blocked if READ in rights[c]]
        raise Forbidden(
            f"cascade=true would deactivate relationships in {len(blocked)} ERCollection"
            f"{'s' if len(blocked) > 1 else ''} where the caller has no write grant"
            f"{' (' + ', '.join(named) + ')' if named else ''}; nothing was deleted"
        )
    # the entity goes first: from now on no new relationship can name it, so the search below is complete
    # but for writers that checked the entity before this point (see docs/API.md)
    outcome = (await _deactivate(ctx, ENTITIES, [entity_id], expected=expected))[entity_id]
    raise_if_mismatch(outcome)  # a concurrent write won
    if isinstance(outcome, str):
        raise NotFound(outcome)  # a concurrent delete won
    result = DeleteResult(ctx.transaction_id, [
        Deactivation(ENTITIES, ctx.collection_id, entity_id, outcome, "Entity deleted")])
    if cascade and total:
        await _cascade(ctx, entity_id, references, rights, result, owner)
    return result


async def _cascade(ctx: WriteContext, entity_id: str, references: EdgeQuery,
                   rights: dict[str, frozenset[str]], result: DeleteResult, owner: bool) -> None:
    by_collection: dict[str, list[str]] = {}
    for relationship in await ctx.storage.find_edges(references):
        by_collection.setdefault(relationship["sourceERCollectionId"], []).append(relationship["id"])
    late = set(by_collection) - set(rights)
    if late:
        rights.update(await ctx.acl.access_to_many(late, ctx.principal))
    message = f"Relationship deleted with entity {shown(entity_id)} (cascade)"
    for collection_id, ids in sorted(by_collection.items()):
        if not owner and WRITE not in rights[collection_id]:
            # only a relationship written while this delete ran can get here (the rights were checked first)
            structlog.get_logger("erapi.domain").warning(
                "cascade left relationships active", entity_id=entity_id, ercollection=collection_id, ids=ids)
            continue
        outcomes = await _deactivate(replace(ctx, collection_id=collection_id), RELATIONSHIPS, ids,
                                     still=lambda previous: _references(previous, ctx.collection_id, entity_id))
        for relationship_id in sorted(ids):
            outcome = outcomes[relationship_id]
            if not isinstance(outcome, str):  # a str: deactivated or re-pointed meanwhile, nothing to do
                result.deactivated.append(
                    Deactivation(RELATIONSHIPS, collection_id, relationship_id, outcome, message))


def _references(relationship: Document, collection_id: str, entity_id: str) -> bool:
    return (relationship.get("sourceERCollectionId") == collection_id
            and relationship.get("sourceEntityId") == entity_id) or (
        relationship.get("destinationERCollectionId") == collection_id
        and relationship.get("destinationEntityId") == entity_id)


def _referenced_message(entity_id: str, total: int, listed: list[Document]) -> str:
    message = f"Entity {shown(entity_id)} is referenced by {total} active relationship{'s' if total > 1 else ''}"
    if listed:
        names = ", ".join(f"{r['id']} (ERCollection {r['sourceERCollectionId']})" for r in listed)
        message += f", among them {names}"
    return message + "; delete those first, or delete with cascade=true"


async def _deactivate(ctx: WriteContext, kind: Kind, ids: list[str],
                      still: Callable[[Document], bool] = lambda previous: True,
                      expected: int | None = None) -> dict[str, Document | str]:
    """Write a new version with ``isActive: false`` of each id that is active (and passes ``still``, and is at
    version ``expected`` when given); a str outcome says why not. Same claim-then-publish path as an upsert."""
    now = utc_timestamp()

    def build(item: dict, previous: Document | None) -> Document | str:
        if previous is None or not is_active(previous) or not still(previous):
            return f"{kind.label} {item['id']} not found in ERCollection {ctx.collection_id}"
        document = {key: value for key, value in previous.items() if key != "sysData"}
        document.update(isActive=False, sysData=system_data(ctx, kind, previous, now))
        return document

    condition = {} if expected is None else {EXPECTED_VERSION: expected}
    return await upsert_versioned(ctx, kind, {document_id: {"id": document_id, **condition} for document_id in ids},
                                   build)
