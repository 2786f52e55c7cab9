"""Batch upsert of entities and relationships: every per-item rule of the contract, no HTTP, no driver.

A batch costs a constant number of storage calls whatever its size: one ACL lookup per distinct collection
(usually cached), one entity fetch per collection, one read of the existing documents, one claim of the new
versions, one publish of the winners. Only items that lose a race to a concurrent writer go round again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import structlog

from erapi import brick_relationships
from erapi.acl import READ, WRITE, AccessControl
from erapi.catalog import Catalog, RelationshipType
from erapi.errors import Conflict, Forbidden, NotFound, shown
from erapi.preconditions import EXPECTED_VERSION, raise_if_mismatch, version_problem
from storage_plugins.base import VERSION_FIELD, Document, EdgeQuery, Storage

MAX_CLAIM_ROUNDS = 64  # each round lets at least one of the racing writers of an id win
SYSTEM_FIELDS = frozenset({"sysData", "isActive", EXPECTED_VERSION})  # never stored as sent
RELATIONSHIP_DERIVED = ("brickRelationshipName", "brickRelationshipType")
ENTITY_DERIVED = ("brickEntityType", "brickEntitySubType")


_last_timestamp: tuple[datetime, str] | None = None  # the last moment formatted, and its text


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with microseconds: fixed width, so string order is time order.

    The last moment's text is kept: the records of one request or job are stamped with the same few
    moments over and over (an async job of 10,000 items formats its receipt time 20,000 times), and
    ``strftime`` costs more than everything else a state entry needs.
    """
    global _last_timestamp
    moment = moment or datetime.now(timezone.utc)
    last = _last_timestamp
    if last is not None and moment.tzinfo is not None and last[0] == moment:  # aware: equal means one instant
        return last[1]
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_timestamp = (moment, text)
    return text


@dataclass(frozen=True)
class WriteContext:
    storage: Storage
    catalog: Catalog
    acl: AccessControl
    principal: str
    collection_id: str
    transaction_id: str
    correlation_id: str
    destination_access: str = READ
    create_inverse: bool = False  # also write each written relationship's inverse (createInverse=true)
    reapply: bool = False  # a job chunk claimed again: versions this transaction already wrote count as done


@dataclass
class ItemResult:
    id: str
    ok: bool
    message: str
    document: Document | None = None
    details: dict[str, Any] = field(default_factory=dict)  # extra fields of the item's success entry


@dataclass(frozen=True)
class Unchanged:
    """An upsert whose content equals the current version: nothing is written, the item still succeeds."""

    document: Document


UNCHANGED_NOTE = " (unchanged: no new version written)"


def tracker_message(item: ItemResult) -> str:
    """The item's status record message: the success entry's, and says so when nothing was written."""
    return item.message + UNCHANGED_NOTE if item.details.get("unchanged") else item.message


@dataclass
class BatchResult:
    kind: str  # "entities" or "relationships"
    transaction_id: str
    results: list[ItemResult] = field(default_factory=list)  # request order

    @property
    def successes(self) -> list[ItemResult]:
        return [r for r in self.results if r.ok]

    @property
    def failures(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]


# ---- relationships ---------------------------------------------------------------------------------------------


async def upsert_relationships(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
    result = await _upsert_relationship_batch(ctx, items)
    if ctx.create_inverse:
        await _add_inverses(ctx, items, result)
    return result


class _BatchCatalog:
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
            found = self._derived[name] = _relationship_derived_fields(self.catalog, {"relationshipType": name})
            return found

    def is_a(self, entity_type: str, class_name: str) -> bool:
        key = (entity_type, class_name)
        try:
            return self._is_a[key]
        except KeyError:
            found = self._is_a[key] = self.catalog.is_a(entity_type, class_name)
            return found


async def _upsert_relationship_batch(ctx: WriteContext, sent: list[dict[str, Any]]) -> BatchResult:
    failures: dict[int, str] = {}
    items = list(sent)  # items named by their Brick relationship are replaced by their resolved copies
    types = _BatchCatalog(ctx.catalog)
    unique = first_occurrences(items, "Relationship", failures)
    for index in unique:
        message = _relationship_request_problem(ctx, types, items[index])
        if message:
            failures[index] = message

    # the header's collection was authorised for writing already; only other destinations need a check
    destinations = {_destination_collection(ctx, items[i]) for i in unique if i not in failures}
    rights = await ctx.acl.access_to_many(destinations - {ctx.collection_id}, ctx.principal)
    for index in unique:
        if index not in failures:
            destination = _destination_collection(ctx, items[index])
            if destination != ctx.collection_id and ctx.destination_access not in rights[destination]:
                failures[index] = (
                    f"Destination ERCollection {destination} does not exist or is not "
                    f"{'readable' if ctx.destination_access == READ else 'writable'} by the caller"
                )

    entity_types = await _fetch_entity_types(ctx, [items[i] for i in unique if i not in failures])
    for index in unique:
        if index not in failures and brick_relationships.named_by_brick(items[index]):
            _resolve_brick_name(ctx, items, index, entity_types, failures)
    for index in unique:
        if index not in failures:
            message = _endpoint_problem(ctx, types, items[index], entity_types)
            if message:
                failures[index] = message

    candidates = {items[i]["id"]: items[i] for i in unique if i not in failures}
    now = utc_timestamp()
    outcomes = await _upsert_versioned(
        ctx, "relationships", candidates,
        _unless_unchanged(lambda item, previous: _relationship_document(ctx, types, item, previous, now)),
    )
    result = _batch_result(ctx, "relationships", items, failures, outcomes, "Relationship upserted successfully")
    for item, outcome in zip(sent, result.results):
        if outcome.ok and brick_relationships.named_by_brick(item):  # say which type was chosen
            outcome.details["relationshipType"] = outcome.document["relationshipType"]
    return result


def _resolve_brick_name(ctx: WriteContext, items: list[dict[str, Any]], index: int,
                        entity_types: dict[str, dict[str, str]], failures: dict[int, str]) -> None:
    item = items[index]
    ends = ((item["sourceEntityId"], ctx.collection_id, "Source"),
            (item["destinationEntityId"], _destination_collection(ctx, item), "Destination"))
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


def _relationship_request_problem(ctx: WriteContext, types: _BatchCatalog, item: Mapping[str, Any]) -> str | None:
    if brick_relationships.named_by_brick(item):
        return _brick_named_request_problem(ctx, item)
    relationship_type = types.relationship_type(item["relationshipType"])
    if relationship_type is None:
        return f"Relationship type {item['relationshipType']} not found in the relationship type catalog"
    return _source_collection_problem(ctx, item) or _derived_field_problem(
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


def _relationship_derived_fields(catalog: Catalog, item: Mapping[str, Any]) -> dict[str, str]:
    relationship_type = catalog.relationship_type(item["relationshipType"])
    return {
        "brickRelationshipName": relationship_type.brick_relationship_name,
        "brickRelationshipType": catalog.spelled_like(
            relationship_type.brick_relationship_type, item["relationshipType"]),
    }


def _derived_field_problem(item: Mapping[str, Any], derived: Mapping[str, str]) -> str | None:
    # Derived fields are the service's: a client may echo them back unchanged, never set them
    for name, value in derived.items():
        if name in item and item[name] != value:
            return f"Restricted property {name} is not allowed to change"
    return None


def _destination_collection(ctx: WriteContext, item: Mapping[str, Any]) -> str:
    return item.get("destinationERCollectionId", ctx.collection_id)


async def _fetch_entity_types(ctx: WriteContext, items: list[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """The type of every active entity the items name, per collection: one storage call per collection."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        wanted.setdefault(ctx.collection_id, set()).add(item["sourceEntityId"])
        wanted.setdefault(_destination_collection(ctx, item), set()).add(item["destinationEntityId"])
    return {
        collection_id: await ctx.storage.get_active_types("entities", collection_id, ids)
        for collection_id, ids in wanted.items()
    }


def _endpoint_problem(ctx: WriteContext, types: _BatchCatalog, item: Mapping[str, Any],
                     entity_types: dict[str, dict[str, str]]) -> str | None:
    relationship_type = types.relationship_type(item["relationshipType"])
    ends = (
        ("Source", item["sourceEntityId"], ctx.collection_id, relationship_type.source),
        ("Destination", item["destinationEntityId"], _destination_collection(ctx, item), relationship_type.destination),
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


def _relationship_document(ctx: WriteContext, types: _BatchCatalog, item: dict, previous: Document | None,
                           now: str) -> Document | str:
    relationship_type = types.relationship_type(item["relationshipType"])
    if previous is not None:
        stored_type = types.relationship_type(previous["relationshipType"])
        if stored_type is not relationship_type:
            return "Restricted property relationshipType is not allowed to change"
    document = _client_fields(item)
    document.update(
        sourceERCollectionId=ctx.collection_id,
        destinationERCollectionId=_destination_collection(ctx, item),
        **types.derived_fields(item["relationshipType"]),
        isActive=True,
        sysData=_system_data(ctx, "relationships", previous, now),
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
    destination_collection = _destination_collection(ctx, item)
    inverse = {
        "id": inverse_id(ctx.collection_id, item["id"]),
        "sourceEntityId": item["destinationEntityId"],
        "destinationEntityId": item["sourceEntityId"],
        "relationshipType": ctx.catalog.client_name(inverse_type, item["relationshipType"]),
        "sourceERCollectionId": destination_collection,
        "destinationERCollectionId": ctx.collection_id,
        "inverseOf": item["id"],
    }
    if "relationshipName" in item:
        inverse["relationshipName"] = item["relationshipName"]
    return inverse


# ---- entities ----------------------------------------------------------------------------------------------------


async def upsert_entities(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
    failures: dict[int, str] = {}
    unique = first_occurrences(items, "Entity", failures)
    for index in unique:
        entity_type = ctx.catalog.entity_type(items[index]["entityType"])
        if entity_type is None:
            failures[index] = _unknown_entity_type_message(ctx.catalog, items[index]["entityType"])
            continue
        problem = _unknown_additional_type(ctx.catalog, items[index]) or _derived_field_problem(
            items[index], _entity_derived_fields(ctx.catalog, items[index]))
        if problem:
            failures[index] = problem
    candidates = {items[i]["id"]: items[i] for i in unique if i not in failures}
    now = utc_timestamp()
    outcomes = await _upsert_versioned(
        ctx, "entities", candidates,
        _unless_unchanged(lambda item, previous: _entity_document(ctx, item, previous, now)),
    )
    return _batch_result(ctx, "entities", items, failures, outcomes, "Entity upserted successfully")


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
    document = _client_fields(item)
    document.update(
        **_entity_derived_fields(ctx.catalog, item),
        isActive=True,
        sysData=_system_data(ctx, "entities", previous, now),
    )
    return document


def _entity_derived_fields(catalog: Catalog, item: Mapping[str, Any]) -> dict[str, str]:
    entity_type = catalog.entity_type(item["entityType"])
    return {
        "brickEntityType": catalog.spelled_like(entity_type.brick_entity_type, item["entityType"]),
        "brickEntitySubType": catalog.spelled_like(entity_type.name, item["entityType"]),
    }


# ---- deletes: a new version with isActive false ---------------------------------------------------------------

MAX_CASCADE = 10_000  # relationships one entity delete may deactivate
MAX_LISTED_REFERENCES = 10  # relationship ids named in a refusal
LABEL = {"entities": "Entity", "relationships": "Relationship"}


@dataclass
class Deactivation:
    kind: str
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
    await read_current(ctx.storage, "relationships", ctx.collection_id, relationship_id)  # may roll forward
    outcome = (await _deactivate(ctx, "relationships", [relationship_id], expected=expected))[relationship_id]
    raise_if_mismatch(outcome)
    if isinstance(outcome, str):
        raise NotFound(outcome)
    return DeleteResult(ctx.transaction_id, [
        Deactivation("relationships", ctx.collection_id, relationship_id, outcome, "Relationship deleted")])


async def delete_entity(ctx: WriteContext, entity_id: str, cascade: bool, expected: int | None = None) -> DeleteResult:
    """Soft-delete one entity. Active relationships referencing it, as source or as destination and from any
    collection, refuse the delete (Conflict) unless ``cascade``: then each is deactivated in the collection
    it lives in, which needs a write grant on every one of them (Forbidden otherwise; nothing is written) --
    except for the owner of the entity's collection, who can always delete its entities: a relationship
    into a collection exists by the read grant its owner gave, and a grant since revoked must not pin the
    entity for ever.
    """
    entity = await read_current(ctx.storage, "entities", ctx.collection_id, entity_id)
    if expected is not None:  # a precondition comes before what the delete itself would refuse
        raise_if_mismatch(version_problem("entities", "Entity", {"id": entity_id, EXPECTED_VERSION: expected}, entity))
    if entity is None or not _is_active(entity):
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
    outcome = (await _deactivate(ctx, "entities", [entity_id], expected=expected))[entity_id]
    raise_if_mismatch(outcome)  # a concurrent write won
    if isinstance(outcome, str):
        raise NotFound(outcome)  # a concurrent delete won
    result = DeleteResult(ctx.transaction_id, [
        Deactivation("entities", ctx.collection_id, entity_id, outcome, "Entity deleted")])
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
        outcomes = await _deactivate(replace(ctx, collection_id=collection_id), "relationships", ids,
                                     still=lambda previous: _references(previous, ctx.collection_id, entity_id))
        for relationship_id in sorted(ids):
            outcome = outcomes[relationship_id]
            if not isinstance(outcome, str):  # a str: deactivated or re-pointed meanwhile, nothing to do
                result.deactivated.append(
                    Deactivation("relationships", collection_id, relationship_id, outcome, message))


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


async def _deactivate(ctx: WriteContext, kind: str, ids: list[str],
                      still: Callable[[Document], bool] = lambda previous: True,
                      expected: int | None = None) -> dict[str, Document | str]:
    """Write a new version with ``isActive: false`` of each id that is active (and passes ``still``, and is at
    version ``expected`` when given); a str outcome says why not. Same claim-then-publish path as an upsert."""
    now = utc_timestamp()

    def build(item: dict, previous: Document | None) -> Document | str:
        if previous is None or not _is_active(previous) or not still(previous):
            return f"{LABEL[kind]} {item['id']} not found in ERCollection {ctx.collection_id}"
        document = {key: value for key, value in previous.items() if key != "sysData"}
        document.update(isActive=False, sysData=_system_data(ctx, kind, previous, now))
        return document

    condition = {} if expected is None else {EXPECTED_VERSION: expected}
    return await _upsert_versioned(ctx, kind, {document_id: {"id": document_id, **condition} for document_id in ids},
                                   build)


def _is_active(document: Document) -> bool:
    return document.get("isActive", True) is not False


def delete_status_records(ctx: WriteContext, result: DeleteResult, received_at: datetime) -> list[Document]:
    """One Completed record per deactivated document, all kept under the request's collection (so each
    tracker resolves with the request's ``ercollectionid``), ``requestAction`` Delete."""
    received = utc_timestamp(received_at)
    requested, processing = state_entry("Requested", received_at), state_entry("Processing", received_at)
    completed = state_entry("Completed", datetime.now(timezone.utc))
    return [
        {
            "id": item_record_id(ctx.transaction_id, index),
            "transactionId": ctx.transaction_id,
            "correlationId": ctx.correlation_id,
            "requestAction": "Delete",
            "requestObject": REQUEST_OBJECT[item.kind],
            "state": "Completed",
            "message": item.message,
            "serviceData": service_data(ctx.collection_id, item.kind, item.id),
            "receivedTimestamp": received,
            "stateHistory": [requested, processing, completed],  # entries shared by the records: see status_records
        }
        for index, item in enumerate(result.deactivated)
    ]


# ---- shared machinery --------------------------------------------------------------------------------------------


async def read_current(storage: Storage, kind: str, collection_id: str, document_id: str) -> Document | None:
    """The current version of one id, or None. An id absent from the current view may have a version claimed
    by a writer that died before publishing it: that version is published first (storage_plugins/base.py), so
    that a read never denies what ``/versions`` lists, and a delete never misses what a read shows."""
    document = (await storage.get_current(kind, collection_id, [document_id])).get(document_id)
    if document is None:
        document = (await storage.roll_forward(kind, collection_id, [document_id])).get(document_id)
    return document


def first_occurrences(items: list[Mapping[str, Any]], label: str, failures: dict[int, str]) -> list[int]:
    """Indexes of the first occurrence of each id; every later occurrence is recorded as a failure."""
    seen: set[str] = set()
    unique = []
    for index, item in enumerate(items):
        if item["id"] in seen:
            failures[index] = f"{label} id {item['id']} appears more than once in the request"
        else:
            seen.add(item["id"])
            unique.append(index)
    return unique


def _client_fields(item: Mapping[str, Any]) -> Document:
    if SYSTEM_FIELDS.isdisjoint(item):  # the usual case: clients seldom echo system fields back
        return dict(item)
    return {key: value for key, value in item.items() if key not in SYSTEM_FIELDS}


def _system_data(ctx: WriteContext, kind: str, previous: Document | None, now: str) -> Document:
    if previous is None:  # a new document: the same fields as below, without the look-ups
        return {VERSION_FIELD[kind]: 1, "sysCreatedAt": now, "sysCreatedBy": ctx.principal, "sysUpdatedAt": now,
                "sysUpdatedBy": ctx.principal, "sysTransactionId": ctx.transaction_id}
    previous_system = previous["sysData"] if previous else {}
    return {
        VERSION_FIELD[kind]: previous_system.get(VERSION_FIELD[kind], 0) + 1,
        "sysCreatedAt": previous_system.get("sysCreatedAt", now),
        "sysCreatedBy": previous_system.get("sysCreatedBy", ctx.principal),
        "sysUpdatedAt": now,
        "sysUpdatedBy": ctx.principal,
        "sysTransactionId": ctx.transaction_id,
    }


Builder = Callable[[dict, Document | None], "Document | Unchanged | str"]


def _unless_unchanged(build: Builder) -> Builder:
    """``build``, except that a document equal to the current version in everything but ``sysData`` is not
    written again: re-sending the same data (a re-import) makes no new version."""

    def build_if_changed(item: dict, previous: Document | None) -> Document | Unchanged | str:
        built = build(item, previous)
        if previous is not None and isinstance(built, dict) and _content(built) == _content(previous):
            return Unchanged(previous)
        return built

    return build_if_changed


def _content(document: Document) -> Document:
    return {key: value for key, value in document.items() if key != "sysData"}


async def _upsert_versioned(
    ctx: WriteContext, kind: str, candidates: dict[str, dict], build: Builder
) -> dict[str, Document | Unchanged | str]:
    """Write each candidate as the next version of its id; a str outcome is the item's failure message, an
    Unchanged one an item equal to its current version (nothing written).

    Claims the versions in the history (exactly one concurrent writer wins each version), publishes the
    winners to the current view, and builds the losers again on top of the version that beat them, once that
    version is published too.
    """
    outcomes: dict[str, Document | Unchanged | str] = {}
    pending = candidates
    if ctx.reapply and pending:
        pending = await _skip_applied(ctx, kind, pending, outcomes)
    previous = await ctx.storage.get_current(kind, ctx.collection_id, pending) if pending else {}
    for _ in range(MAX_CLAIM_ROUNDS):
        documents = []
        for document_id, item in pending.items():
            stored = previous.get(document_id)
            built = version_problem(kind, LABEL[kind], item, stored) or build(item, stored)
            if not isinstance(built, dict):
                outcomes[document_id] = built
            else:
                documents.append(built)
        if not documents:
            return outcomes
        claim = await ctx.storage.claim_versions(kind, ctx.collection_id, documents)
        claimed = set(claim.claimed)
        winners = [document for document in documents if document["id"] in claimed]
        await ctx.storage.put_current(kind, ctx.collection_id, winners)
        outcomes.update((document["id"], document) for document in winners)
        if not claim.conflicted:
            return outcomes
        pending = {document_id: candidates[document_id] for document_id in claim.conflicted}
        # the version that beat us may be claimed but never published (its writer died): publish it before
        # building on it, so that no version is built on what readers cannot see (see storage_plugins/base.py)
        previous = await ctx.storage.roll_forward(kind, ctx.collection_id, pending)
    for document_id in pending:
        outcomes[document_id] = f"Too many concurrent updates of {shown(document_id)}; retry the request"
    return outcomes


async def _skip_applied(
    ctx: WriteContext, kind: str, candidates: dict[str, dict], outcomes: dict[str, Document | str]
) -> dict[str, dict]:
    """Report versions this transaction wrote before (a worker died after writing) instead of writing again."""
    applied = await ctx.storage.find_applied(kind, ctx.collection_id, candidates, ctx.transaction_id)
    # the dead worker may have claimed a version without publishing it: publishing is forward-only and safe
    await ctx.storage.put_current(kind, ctx.collection_id, list(applied.values()))
    outcomes.update(applied)
    return {document_id: item for document_id, item in candidates.items() if document_id not in applied}


def _batch_result(
    ctx: WriteContext,
    kind: str,
    items: list[Mapping[str, Any]],
    failures: dict[int, str],
    outcomes: dict[str, Document | Unchanged | str],
    success_message: str,
) -> BatchResult:
    result = BatchResult(kind=kind, transaction_id=ctx.transaction_id)
    for index, item in enumerate(items):
        outcome = failures.get(index) or outcomes[item["id"]]
        if isinstance(outcome, str):
            result.results.append(ItemResult(id=item["id"], ok=False, message=outcome))
        elif isinstance(outcome, Unchanged):
            result.results.append(ItemResult(id=item["id"], ok=True, message=success_message,
                                             document=outcome.document, details={"unchanged": True}))
        else:
            result.results.append(ItemResult(id=item["id"], ok=True, message=success_message, document=outcome))
    return result


# ---- status records --------------------------------------------------------------------------------------------

REQUEST_OBJECT = {"entities": "Entity", "relationships": "Relationship"}


def status_records(ctx: WriteContext, result: BatchResult, received_at: datetime) -> list[Document]:
    """One status record per item, in its final state, with the whole state history.

    Every item of a batch has the same moments (received, finished), so each timestamp is formatted once
    per batch and the state entries are shared by the records: nothing changes an entry once made (a
    transition appends a new one), and storage copies what it keeps.
    """
    received = utc_timestamp(received_at)
    requested, processing = state_entry("Requested", received_at), state_entry("Processing", received_at)
    finished_at = datetime.now(timezone.utc)
    finals = {True: ("Completed", state_entry("Completed", finished_at)),
              False: ("Failed", state_entry("Failed", finished_at))}
    transaction_id, correlation_id = ctx.transaction_id, ctx.correlation_id
    request_object = REQUEST_OBJECT[result.kind]
    records = []
    for index, item in enumerate(result.results):
        final_state, final_entry = finals[item.ok]
        records.append(
            {
                "id": item_record_id(transaction_id, index),
                "transactionId": transaction_id,
                "correlationId": correlation_id,
                "requestAction": "Upsert",
                "requestObject": request_object,
                "state": final_state,
                "message": tracker_message(item),
                "serviceData": service_data(ctx.collection_id, result.kind, item.id),
                "receivedTimestamp": received,
                "stateHistory": [requested, processing, final_entry],
            }
        )
    return records


def item_record_id(transaction_id: str, index: int) -> str:
    """The status record of a transaction's item: one id per (transaction, item), so it is written once."""
    return f"{transaction_id}.{index:05d}"


def service_data(collection_id: str, kind: str, item_id: str) -> Document:
    """The record's subject: an entity, a relationship, or (kind "job") the whole transaction."""
    return {
        "erCollectionId": collection_id,
        "entityId": item_id if kind == "entities" else None,
        "relationshipId": item_id if kind == "relationships" else None,
    }


def state_entry(state: str, moment: datetime) -> Document:
    return {"timestamp": utc_timestamp(moment), "unixTimestamp": int(moment.timestamp() * 1000), "state": state}


def new_transaction_id() -> str:
    return str(uuid.uuid4())

