"""The versioning engine: every write claims the next version of each id, then publishes the winners."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from erapi.errors import shown
from erapi.kinds import Kind
from erapi.preconditions import EXPECTED_VERSION, version_problem
from erapi.writes.context import BatchResult, ItemResult, Unchanged, WriteContext
from storage_plugins.base import Document, Storage

MAX_CLAIM_ROUNDS = 64  # each round lets at least one of the racing writers of an id win
SYSTEM_FIELDS = frozenset({"sysData", "isActive", EXPECTED_VERSION})  # never stored as sent


async def read_current(storage: Storage, kind: Kind, collection_id: str, document_id: str) -> Document | None:
    """The current version of one id, or None. An id absent from the current view may have a version claimed
    by a writer that died before publishing it: that version is published first (storage_plugins/base.py), so
    that a read never denies what ``/versions`` lists, and a delete never misses what a read shows."""
    document = (await storage.get_current(kind.name, collection_id, [document_id])).get(document_id)
    if document is None:
        document = (await storage.roll_forward(kind.name, collection_id, [document_id])).get(document_id)
    return document


def first_occurrences(items: list[Mapping[str, Any]], kind: Kind, failures: dict[int, str]) -> list[int]:
    """Indexes of the first occurrence of each id; every later occurrence is recorded as a failure."""
    ids = [item["id"] for item in items]
    if len(set(ids)) == len(ids):  # the usual case: no id repeated
        return list(range(len(items)))
    seen: set[str] = set()
    unique = []
    for index, item in enumerate(items):
        if item["id"] in seen:
            failures[index] = f"{kind.label} id {item['id']} appears more than once in the request"
        else:
            seen.add(item["id"])
            unique.append(index)
    return unique


def client_fields(item: Mapping[str, Any]) -> Document:
    if SYSTEM_FIELDS.isdisjoint(item):  # the usual case: clients seldom echo system fields back
        return dict(item)
    return {key: value for key, value in item.items() if key not in SYSTEM_FIELDS}


def system_data(ctx: WriteContext, kind: Kind, previous: Document | None, now: str) -> Document:
    if previous is None:  # a new document: the same fields as below, without the look-ups
        return first_system_data(ctx, kind, now)
    previous_system = previous["sysData"] if previous else {}
    return {
        kind.version_field: previous_system.get(kind.version_field, 0) + 1,
        "sysCreatedAt": previous_system.get("sysCreatedAt", now),
        "sysCreatedBy": previous_system.get("sysCreatedBy", ctx.principal),
        "sysUpdatedAt": now,
        "sysUpdatedBy": ctx.principal,
        "sysTransactionId": ctx.transaction_id,
    }


def first_system_data(ctx: WriteContext, kind: Kind, now: str) -> Document:
    """The sysData of every version 1 a transaction writes at ``now``: one value they share (nothing changes a
    document once built: storage takes it over, see storage_plugins/base.py)."""
    key = (kind.version_field, now)
    found = ctx.first_versions.get(key)
    if found is None:
        found = ctx.first_versions[key] = {
            kind.version_field: 1, "sysCreatedAt": now, "sysCreatedBy": ctx.principal, "sysUpdatedAt": now,
            "sysUpdatedBy": ctx.principal, "sysTransactionId": ctx.transaction_id}
    return found


Builder = Callable[[dict, Document | None], "Document | Unchanged | str"]
Build = Callable[[dict, "Document | None", str], "Document | Unchanged | str"]


def unless_unchanged(build: Build, now: str) -> Builder:
    """``build`` at ``now``, except that a document equal to the current version in everything but ``sysData``
    is not written again: re-sending the same data (a re-import) makes no new version."""

    def build_if_changed(item: dict, previous: Document | None) -> Document | Unchanged | str:
        built = build(item, previous, now)
        if previous is not None and isinstance(built, dict) and _content(built) == _content(previous):
            return Unchanged(previous)
        return built

    return build_if_changed


def _content(document: Document) -> Document:
    return {key: value for key, value in document.items() if key != "sysData"}


async def upsert_versioned(
    ctx: WriteContext, kind: Kind, candidates: dict[str, dict], build: Builder
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
    previous = await ctx.storage.get_current(kind.name, ctx.collection_id, pending) if pending else {}
    for _ in range(MAX_CLAIM_ROUNDS):
        documents = []
        for document_id, item in pending.items():
            stored = previous.get(document_id)
            # an item without expectedVersion has no version problem (the usual case: not asked for it)
            built = (EXPECTED_VERSION in item and version_problem(kind, item, stored)) or build(item, stored)
            if not isinstance(built, dict):
                outcomes[document_id] = built
            else:
                documents.append(built)
        if not documents:
            return outcomes
        claim = await ctx.storage.claim_versions(kind.name, ctx.collection_id, documents)
        winners = documents if not claim.conflicted else _claimed(documents, claim.claimed)
        ctx.note_sequence(ctx.collection_id, await ctx.storage.publish(kind.name, ctx.collection_id, winners))
        outcomes.update((document["id"], document) for document in winners)
        if not claim.conflicted:
            return outcomes
        pending = {document_id: candidates[document_id] for document_id in claim.conflicted}
        # the version that beat us may be claimed but never published (its writer died): publish it before
        # building on it, so that no version is built on what readers cannot see (see storage_plugins/base.py)
        previous = await ctx.storage.roll_forward(kind.name, ctx.collection_id, pending)
    for document_id in pending:
        outcomes[document_id] = f"Too many concurrent updates of {shown(document_id)}; retry the request"
    return outcomes


def _claimed(documents: list[Document], claimed_ids: list[str]) -> list[Document]:
    claimed = set(claimed_ids)
    return [document for document in documents if document["id"] in claimed]


async def _skip_applied(
    ctx: WriteContext, kind: Kind, candidates: dict[str, dict], outcomes: dict[str, Document | str]
) -> dict[str, dict]:
    """Report versions this transaction wrote before (a worker died after writing) instead of writing again."""
    applied = await ctx.storage.find_applied(kind.name, ctx.collection_id, candidates, ctx.transaction_id)
    # the dead worker may have claimed a version without publishing it: publishing is forward-only and safe
    await ctx.storage.publish_behind(kind.name, ctx.collection_id, list(applied.values()))
    outcomes.update(applied)
    return {document_id: item for document_id, item in candidates.items() if document_id not in applied}


def batch_result(
    ctx: WriteContext,
    kind: Kind,
    items: list[Mapping[str, Any]],
    failures: dict[int, str],
    outcomes: dict[str, Document | Unchanged | str],
    success_message: str,
) -> BatchResult:
    result = BatchResult(kind=kind, transaction_id=ctx.transaction_id)
    results = result.results
    for index, item in enumerate(items):
        outcome = failures.get(index) or outcomes[item["id"]]
        if type(outcome) is dict:  # the usual case first: a version written
            results.append(ItemResult(item["id"], True, success_message, outcome))
        elif isinstance(outcome, str):
            results.append(ItemResult(item["id"], False, outcome))
        elif isinstance(outcome, Unchanged):
            results.append(ItemResult(item["id"], True, success_message, outcome.document, {"unchanged": True}))
        else:
            results.append(ItemResult(item["id"], True, success_message, outcome))
    return result


def is_active(document: Document) -> bool:
    return document.get("isActive", True) is not False


def derived_field_problem(item: Mapping[str, Any], derived: Mapping[str, str]) -> str | None:
    # Derived fields are the service's: a client may echo them back unchanged, never set them
    for name, value in derived.items():
        if name in item and item[name] != value:
            return f"Restricted property {name} is not allowed to change"
    return None
