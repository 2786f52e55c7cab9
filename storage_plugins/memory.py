"""The embedded default storage: plain dicts in this process, gone when the process ends.

Each method runs without an ``await`` inside it, so on one event loop every call is atomic; the
claim-then-publish protocol of the interface still decides races between requests that interleave.

Copies. The plugin never shares an object with a caller: what it is given is copied once when it is
stored (the caller may change its own objects afterwards), and what it returns is a fresh copy (the
caller may change that). Between those two copies the plugin shares freely, because nothing here changes
a stored versioned document in place: a new version is a new object, so the history's copy of a version
and the current view's are one object; the entries of a status record's ``stateHistory`` are never
changed either (a transition appends a new entry), so records written in one batch share the entries the
caller shared. The only objects changed in place are a status record's own top level and its own
``stateHistory`` list (``transition_logs``) and the job-queue chunks, none of which is shared.
"""

from __future__ import annotations

import bisect
import copy
from dataclasses import replace
from typing import Iterable, Iterator, Sequence

from sortedcontainers import SortedList

from storage_plugins.base import (
    KINDS,
    TYPE_FIELD,
    ClaimResult,
    Document,
    DocumentQuery,
    DuplicateError,
    EdgeQuery,
    LogQuery,
    LogTransition,
    Storage,
    version_of,
)

_SCALARS = frozenset({str, int, float, bool, type(None)})  # immutable: a copy may share them


def _clone(value):
    """A deep copy of a document of JSON types: dicts and lists copied, scalars shared (they are immutable).

    About 8 times as fast as ``copy.deepcopy`` (1.0 against 8.2 us for a stored relationship), which pays
    for generality JSON documents do not need (a memo of every object, dispatch by type, ``__reduce_ex__``);
    anything that is not a JSON type is still handed to ``copy.deepcopy``.
    """
    kind = type(value)
    if kind is dict:
        copied = value.copy()
        for key, item in copied.items():  # replacing values while iterating is safe: the size does not change
            if type(item) not in _SCALARS:
                copied[key] = _clone(item)
        return copied
    if kind is list:
        return [item if type(item) in _SCALARS else _clone(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


def _clone_record(record: Document, entries: dict[int, tuple[Document, Document]]) -> Document:
    """A status record's copy for the store: its own top level and ``stateHistory`` list (transitions change
    both), the entries of that list copied once per batch through ``entries`` (keyed by the caller's object)."""
    stored = record.copy()
    for key, value in stored.items():
        if key == "stateHistory" and type(value) is list:
            stored[key] = [_shared_entry(entry, entries) for entry in value]
        elif type(value) not in _SCALARS:
            stored[key] = _clone(value)
    return stored


def _shared_entry(entry, entries: dict[int, tuple[Document, Document]]):
    found = entries.get(id(entry))
    if found is None or found[0] is not entry:
        found = entries[id(entry)] = (entry, _clone(entry))  # the caller's object is kept: its id stays unique
    return found[1]


def _log_sort_key(record: Document) -> tuple[str, str]:
    return (record["receivedTimestamp"], record["id"])


def _insert_log(records: list[Document], record: Document) -> None:
    """Insert into a list sorted by (receivedTimestamp, id): an append in the usual case (newest last)."""
    if not records or _log_sort_key(records[-1]) < _log_sort_key(record):
        records.append(record)
    else:
        records.insert(bisect.bisect_right(records, _log_sort_key(record), key=_log_sort_key), record)


class MemoryStorage(Storage):
    name = "memory"

    def __init__(self) -> None:
        # kind -> collection -> id -> document
        self._current: dict[str, dict[str, dict[str, Document]]] = {kind: {} for kind in KINDS}
        # kind -> collection -> every id of the current view, sorted: a page is a bisect and a walk; an insert
        # costs O(log n), not the O(n) of a list insert, so writes do not slow down as the store grows
        self._ids: dict[str, dict[str, SortedList]] = {kind: {} for kind in KINDS}
        self._active: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}  # active documents per collection
        # relationships by the entity at each end: (collection, entity id) -> {(collection it lives in, id)}
        self._by_source: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._by_destination: dict[tuple[str, str], set[tuple[str, str]]] = {}
        # kind -> collection -> id -> versions (oldest first): the document itself while there is one version
        # (most ids have one: a list per id would cost 88 bytes and a garbage-collected object), else a list
        self._history: dict[str, dict[str, dict[str, Document | list[Document]]]] = {kind: {} for kind in KINDS}
        # collection -> status records sorted by (receivedTimestamp, id); the same records per transaction
        # (the tracker's usual filter, and the job counts), so neither walks the whole collection
        self._logs: dict[str, list[Document]] = {}
        self._log_by_transaction: dict[tuple[str, str], list[Document]] = {}
        self._log_by_id: dict[tuple[str, str], Document] = {}  # (collection, id): ids are unique per collection
        # (collection, transaction) -> state -> how many item records (not the Job record) are in it: an async job
        # asks after every chunk, and counting its 10,000 records each time cost more than applying the chunk
        self._log_states: dict[tuple[str, str], dict[str, int]] = {}
        self._chunks: dict[str, Document] = {}  # claimed oldest first, by (createdAt, id)
        self._registrations: dict[str, Document] = {}
        self._grants: dict[str, dict[str, Document]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def get_current(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        stored = self._current[kind].get(collection_id, {})
        return {doc_id: _clone(stored[doc_id]) for doc_id in set(ids) if doc_id in stored}

    async def get_latest_versions(
        self, kind: str, collection_id: str, ids: Iterable[str]
    ) -> dict[str, Document]:
        history = self._history[kind].get(collection_id, {})
        return {doc_id: _clone(_versions(history[doc_id])[-1]) for doc_id in set(ids) if doc_id in history}

    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        history = self._history[kind].setdefault(collection_id, {})
        result = ClaimResult()
        for document in documents:
            document_id = document["id"]
            stored = history.get(document_id)
            if stored is None:
                history[document_id] = _clone(document)
                result.claimed.append(document_id)
                continue
            versions = _versions(stored)
            wanted = version_of(kind, document)
            if any(version_of(kind, version) == wanted for version in versions):
                result.conflicted.append(document_id)
                continue
            versions = [*versions, _clone(document)]
            if version_of(kind, versions[-2]) > wanted:
                versions.sort(key=lambda version: version_of(kind, version))
            history[document_id] = versions
            result.claimed.append(document_id)
        return result

    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        current = self._current[kind].setdefault(collection_id, {})
        history = self._history[kind].get(collection_id, {})
        for document in documents:
            stored = current.get(document["id"])
            version = version_of(kind, document)
            if stored is None or version_of(kind, stored) < version:
                new = _same_version(kind, history.get(document["id"]), version, document)
                current[document["id"]] = new
                self._reindex(kind, collection_id, stored, new)

    def _reindex(self, kind: str, collection_id: str, old: Document | None, new: Document) -> None:
        if old is None:
            ids = self._ids[kind].get(collection_id)
            if ids is None:
                ids = self._ids[kind][collection_id] = SortedList()
            ids.add(new["id"])
        active = self._active[kind]
        active[collection_id] = (active.get(collection_id, 0) + _is_active(new)
                                 - (_is_active(old) if old is not None else 0))
        if kind != "relationships":
            return
        key = (collection_id, new["id"])
        if old is not None:
            self._by_source.get(_source_end(collection_id, old), set()).discard(key)
            self._by_destination.get(_destination_end(collection_id, old), set()).discard(key)
        for index, end in ((self._by_source, _source_end(collection_id, new)),
                           (self._by_destination, _destination_end(collection_id, new))):
            keys = index.get(end)
            if keys is None:  # not setdefault: that would build an empty set on every call
                keys = index[end] = set()
            keys.add(key)

    async def list_current(self, kind: str, collection_id: str, query: DocumentQuery) -> list[Document]:
        found: list[Document] = []
        if query.limit <= 0:
            return found
        for document in self._selected(kind, collection_id, query):
            found.append(_clone(document))
            if len(found) >= query.limit:
                break
        return found

    async def count_current(self, kind: str, collection_id: str, query: DocumentQuery) -> int:
        if query.active_only and query.types is None and not query.equalities():
            return self._active[kind].get(collection_id, 0)
        if query.types is None and not query.equalities():
            return len(self._ids[kind].get(collection_id, ()))
        return sum(1 for _ in self._selected(kind, collection_id, replace(query, after_id=None)))

    def _selected(self, kind: str, collection_id: str, query: DocumentQuery) -> Iterator[Document]:
        current = self._current[kind].get(collection_id, {})
        equalities = query.equalities()
        ordered: Iterable[str]
        if kind == "relationships" and query.source_entity_id is not None:
            # the source end's index narrows the walk to this entity's relationships
            keys = self._by_source.get((collection_id, query.source_entity_id), set())
            ids = sorted(document_id for _, document_id in keys)
            start = bisect.bisect_right(ids, query.after_id) if query.after_id is not None else 0
            ordered = (ids[index] for index in range(start, len(ids)))
        else:
            ids = self._ids[kind].get(collection_id)
            if ids is None:
                return
            # callers consume the walk before any other call can change the list (no await in between)
            ordered = ids.irange(minimum=query.after_id, inclusive=(False, True))
        type_field = TYPE_FIELD[kind]
        for document_id in ordered:
            document = current[document_id]
            if query.active_only and not _is_active(document):
                continue
            if query.types is not None and document.get(type_field) not in query.types:
                continue
            if any(document.get(name) != value for name, value in equalities.items()):
                continue
            yield document

    async def find_edges(self, query: EdgeQuery) -> list[Document]:
        keys = sorted(self._edge_keys(query))
        if query.after is not None:
            keys = keys[bisect.bisect_right(keys, tuple(query.after)):]
        if query.limit is not None:
            keys = keys[:max(query.limit, 0)]
        current = self._current["relationships"]
        return [_clone(current[collection_id][document_id]) for collection_id, document_id in keys]

    async def count_edges(self, query: EdgeQuery) -> dict[str, int]:
        counts: dict[str, int] = {}
        for collection_id, _ in self._edge_keys(query):
            counts[collection_id] = counts.get(collection_id, 0) + 1
        return counts

    def _edge_keys(self, query: EdgeQuery) -> set[tuple[str, str]]:
        end = (query.collection_id, query.entity_id)
        keys: set[tuple[str, str]] = set()
        if query.outgoing:
            keys |= self._by_source.get(end, set())
        if query.incoming:
            keys |= self._by_destination.get(end, set())
        current = self._current["relationships"]
        return {
            (collection_id, document_id)
            for collection_id, document_id in keys
            if (query.source_collections is None or collection_id in query.source_collections)
            and (not query.active_only or _is_active(current[collection_id][document_id]))
        }

    async def count_by_type(self, kind: str, collection_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        type_field = TYPE_FIELD[kind]
        for document in self._current[kind].get(collection_id, {}).values():
            if _is_active(document):
                counts[document[type_field]] = counts.get(document[type_field], 0) + 1
        return counts

    async def get_versions(self, kind: str, collection_id: str, document_id: str) -> list[Document]:
        return [_clone(v) for v in _versions(self._history[kind].get(collection_id, {}).get(document_id, []))]

    async def insert_logs(self, records: Sequence[Document]) -> None:
        clashes = []
        entries: dict[int, tuple[Document, Document]] = {}  # state entries the batch shares, copied once
        for record in records:
            collection_id = record["serviceData"]["erCollectionId"]
            if (collection_id, record["id"]) in self._log_by_id:
                clashes.append(record["id"])
                continue
            stored = _clone_record(record, entries)
            transaction = (collection_id, record.get("transactionId"))
            _insert_log(self._logs.setdefault(collection_id, []), stored)
            _insert_log(self._log_by_transaction.setdefault(transaction, []), stored)
            self._log_by_id[(collection_id, record["id"])] = stored
            if stored.get("requestObject") != "Job":
                _count_state(self._log_states.setdefault(transaction, {}), stored.get("state"), 1)
        if clashes:
            raise DuplicateError(f"log records already exist: {', '.join(clashes)}")

    async def find_logs(self, query: LogQuery) -> list[Document]:
        found = []
        if query.limit <= 0:
            return found
        for record in self._matching_logs(query, query.after):
            found.append(_clone(record))
            if len(found) >= query.limit:
                break
        return found

    async def count_logs(self, query: LogQuery) -> int:
        return sum(1 for _ in self._matching_logs(query, None))  # counts the stored records, copies none

    def _matching_logs(self, query: LogQuery, after: tuple[str, str] | None) -> Iterator[Document]:
        if query.transaction_id is not None:
            logs = self._log_by_transaction.get((query.collection_id, query.transaction_id), [])
        else:
            logs = self._logs.get(query.collection_id, [])
        start = bisect.bisect_right(logs, tuple(after), key=_log_sort_key) if after else 0
        if query.start_time and (not after or after[0] < query.start_time):
            start = max(start, bisect.bisect_left(logs, (query.start_time, ""), key=_log_sort_key))
        for index in range(start, len(logs)):
            record = logs[index]
            if query.end_time and record["receivedTimestamp"] > query.end_time:
                break
            if _matches(record, query):
                yield record

    async def transition_logs(self, collection_id: str, transitions: Sequence[LogTransition]) -> int:
        moved = 0
        entries: dict[tuple, Document] = {}  # one entry per (moment, state), shared: entries never change
        for transition in transitions:
            record = self._log_by_id.get((collection_id, transition.record_id))
            if record is None:
                continue
            if record["state"] in transition.from_states:
                if record.get("requestObject") != "Job":
                    counts = self._log_states[(collection_id, record.get("transactionId"))]
                    _count_state(counts, record["state"], -1)
                    _count_state(counts, transition.state, 1)
                entry = entries.get((transition.at, transition.state))
                if entry is None:
                    entry = entries[(transition.at, transition.state)] = transition.history_entry()
                record.update(state=transition.state, message=transition.message)
                record["stateHistory"].append(entry)
                moved += 1
        return moved

    async def count_log_states(self, collection_id: str, transaction_id: str) -> dict[str, int]:
        return dict(self._log_states.get((collection_id, transaction_id), {}))

    async def find_applied(
        self, kind: str, collection_id: str, ids: Iterable[str], transaction_id: str
    ) -> dict[str, Document]:
        history = self._history[kind].get(collection_id, {})
        found = {}
        for document_id in set(ids):
            for version in _versions(history.get(document_id, [])):
                if version["sysData"].get("sysTransactionId") == transaction_id:
                    found[document_id] = _clone(version)
        return found

    async def enqueue_chunks(self, chunks: Sequence[Document]) -> None:
        clashes = [chunk["id"] for chunk in chunks if chunk["id"] in self._chunks]
        if clashes:
            raise DuplicateError(f"chunks already exist: {', '.join(clashes)}")
        for chunk in chunks:
            self._chunks[chunk["id"]] = {
                **_clone(chunk), "state": "pending", "attempts": 0, "leaseOwner": None, "leaseExpiresAt": 0.0
            }

    async def claim_chunk(self, worker_id: str, now: float, lease_seconds: float) -> Document | None:
        claimable = [
            chunk for chunk in self._chunks.values()
            if chunk["state"] == "pending" or (chunk["state"] == "processing" and chunk["leaseExpiresAt"] <= now)
        ]
        if not claimable:
            return None
        chunk = min(claimable, key=lambda chunk: (chunk["createdAt"], chunk["id"]))  # the oldest
        chunk.update(state="processing", leaseOwner=worker_id, leaseExpiresAt=now + lease_seconds,
                     attempts=chunk["attempts"] + 1)
        return _clone(chunk)

    async def renew_chunk(self, chunk_id: str, worker_id: str, lease_expires_at: float) -> bool:
        chunk = self._owned_chunk(chunk_id, worker_id)
        if chunk is not None:
            chunk["leaseExpiresAt"] = lease_expires_at
        return chunk is not None

    async def finish_chunk(self, chunk_id: str, worker_id: str, state: str) -> bool:
        chunk = self._owned_chunk(chunk_id, worker_id)
        if chunk is not None:
            # nothing reads a finished chunk again: forgetting it keeps claims fast and the process small
            del self._chunks[chunk_id]
        return chunk is not None

    async def release_chunk(self, chunk_id: str, worker_id: str) -> bool:
        chunk = self._owned_chunk(chunk_id, worker_id)
        if chunk is not None:
            chunk.update(state="pending", leaseOwner=None, leaseExpiresAt=0.0, attempts=chunk["attempts"] - 1)
        return chunk is not None

    async def pending_items(self, collection_id: str | None) -> int:
        return sum(
            chunk["itemCount"]
            for chunk in self._chunks.values()
            if chunk["state"] in ("pending", "processing")
            and (collection_id is None or chunk["ercollectionid"] == collection_id)
        )

    def _owned_chunk(self, chunk_id: str, worker_id: str) -> Document | None:
        chunk = self._chunks.get(chunk_id)
        if chunk is None or chunk["state"] != "processing" or chunk["leaseOwner"] != worker_id:
            return None
        return chunk

    async def register_collection(self, record: Document) -> None:
        if record["collectionId"] in self._registrations:
            raise DuplicateError(f"collection {record['collectionId']} is already registered")
        self._registrations[record["collectionId"]] = _clone(record)

    async def put_grant(self, collection_id: str, principal: str, record: Document) -> None:
        self._grants.setdefault(collection_id, {})[principal] = _clone(record)

    async def get_acl(self, collection_id: str) -> tuple[Document | None, list[Document]]:
        registration = self._registrations.get(collection_id)
        grants = self._grants.get(collection_id, {}).values()
        return (_clone(registration) if registration else None, [_clone(g) for g in grants])


def _count_state(counts: dict[str, int], state: str, change: int) -> None:
    counts[state] = counts.get(state, 0) + change
    if not counts[state]:
        del counts[state]


def _versions(stored: Document | list[Document]) -> list[Document]:
    """An id's versions in the history, oldest first, from what ``_history`` keeps for it."""
    return stored if type(stored) is list else [stored]


def _same_version(kind: str, versions: Document | list[Document] | None, version: int,
                  document: Document) -> Document:
    """The history's object for ``document`` when the history holds that very version, else a copy of it:
    the usual publish of a version just claimed then stores no second copy."""
    for stored in reversed(_versions(versions) if versions is not None else ()):
        if version_of(kind, stored) == version:
            return stored if stored == document else _clone(document)
    return _clone(document)


def _is_active(document: Document) -> bool:
    return document.get("isActive", True) is not False


def _source_end(collection_id: str, relationship: Document) -> tuple[str, str]:
    return (collection_id, relationship.get("sourceEntityId"))


def _destination_end(collection_id: str, relationship: Document) -> tuple[str, str]:
    return (relationship.get("destinationERCollectionId", collection_id), relationship.get("destinationEntityId"))


def _matches(record: Document, query: LogQuery) -> bool:
    service = record["serviceData"]
    return (
        (query.transaction_id is None or record["transactionId"] == query.transaction_id)
        and (query.correlation_id is None or record.get("correlationId") == query.correlation_id)
        and (query.relationship_id is None or service.get("relationshipId") == query.relationship_id)
        and (query.entity_id is None or service.get("entityId") == query.entity_id)
    )
