"""The embedded default storage: plain dicts in this process, gone when the process ends.

Each method runs without an ``await`` inside it, so on one event loop every call is atomic; the
claim-then-publish protocol of the interface still decides races between requests that interleave.

Versioned documents are kept serialised (orjson bytes) in a plain tuple with the few fields the plugin's indexes
and filters read (``Stored``, one layout: the names below say which position holds what). The serialisation is
the copy the interface allows the plugin to skip but needs anyway (see Ownership in storage_plugins/base.py):
bytes are what keeps a large store cheap for the garbage collector. CPython stops tracking bytes and exact
tuples of plain values, so at 1,000,000 stored relationships it tracks about 74,000 objects instead of 3,051,499
and a full collection takes about 0.3 s instead of 1.34 s (bench/gc_pause.py measures it). A class with
``__slots__`` in place of the tuple reads better but is tracked: 1,000,000 of them holding bytes make a full
collection take 0.45 s instead of 0.001 s for the tuples (docs/PERFORMANCE.md), a pause every request would meet
once in a while at that size, so the tuple stays. A claimed document is serialised once: the publish that
follows reuses the history's tuple for the current view (the caller handed the document over and no longer
changes it). Each read decodes a fresh document. Documents are JSON (they came from JSON), so nothing is lost.

Status records are the LogStore mixin's (storage_plugins/memory_logs.py): one StatusBatch per transaction.
Job-queue chunks and ACL records are few and stay dicts, copied in and out, but for a chunk's items, kept
serialised until a worker claims them.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import heapq
import itertools
import operator
import sys
from collections import defaultdict
from typing import AsyncIterator, Iterable, Iterator, Sequence

import orjson
from sortedcontainers import SortedList, SortedSet

from storage_plugins.memory_logs import MemoryLogs
from storage_plugins.base import (
    ADDITIONAL_TYPES_FIELD,
    KINDS,
    TYPE_FIELD,
    VERSION_FIELD,
    AtomicConflict,
    ClaimResult,
    Document,
    DocumentQuery,
    DuplicateError,
    EdgeQuery,
    FrontierQuery,
    GrantedCollections,
    Storage,
    VersionPage,
    WritePathView,
    version_of,
)
from storage_plugins.changes import NumberedChanges
from storage_plugins.jobs import NEW_CHUNK, UNLEASED, leased
from storage_plugins.memory_subscriptions import MemorySubscriptions

_SCALARS = frozenset({str, int, float, bool, type(None)})  # immutable: a copy may share them
_decode = orjson.loads


def _compact(serialised: bytes) -> bytes:
    """The same bytes in an object of their own size: orjson's result keeps the capacity of its write buffer,
    about 4 KB of memory for a 600-byte relationship, so this copy (0.1 us) saves 85 % of a stored one."""
    return bytes(memoryview(serialised))


# A stored version of a versioned document is a plain tuple: its bytes, then what the indexes, lists and version
# checks read (the relationship fields as sent, None when absent; an entity's classes: its type, then its
# additional types, what ``get_active_types`` answers; () for a relationship).
# Plain, not a NamedTuple nor a class: CPython's collector stops tracking a tuple of plain values, but only an
# exact tuple (see the module's docstring).
BLOB, VERSION, ACTIVE, TYPE, SOURCE, DESTINATION_COLLECTION, DESTINATION, TRANSACTION, CLASSES = range(9)
Stored = tuple  # (bytes, int, bool, str | None, str | None, str | None, str | None, str | None, tuple[str, ...])

# the DocumentQuery equality filters, by the position of the field they compare
_EQUALITY_POSITIONS = {
    "sourceEntityId": SOURCE,
    "destinationEntityId": DESTINATION,
    "destinationERCollectionId": DESTINATION_COLLECTION,
}


def _store(kind: str, document: Document, blob: bytes | None = None) -> Stored:
    # the ``_shared`` of each string field written out: this runs once per document written
    get, system, intern = document.get, document["sysData"], sys.intern
    kept_type, source = get(TYPE_FIELD[kind]), get("sourceEntityId")
    destination_collection, destination = get("destinationERCollectionId"), get("destinationEntityId")
    return (
        _compact(orjson.dumps(document) if blob is None else blob),
        system[VERSION_FIELD[kind]],
        get("isActive", True) is not False,
        intern(kept_type) if type(kept_type) is str else kept_type,
        intern(source) if type(source) is str else source,
        intern(destination_collection) if type(destination_collection) is str else destination_collection,
        intern(destination) if type(destination) is str else destination,
        system.get("sysTransactionId"),
        (_shared(kept_type), *map(_shared, get(ADDITIONAL_TYPES_FIELD, ()))) if kind == "entities" else (),
    )


def _typed(stored: Stored, types: frozenset[str], additional: bool) -> bool:
    """Whether the document's type, or with ``additional`` one of its additional types, is one of ``types``."""
    return stored[TYPE] in types or (additional and not types.isdisjoint(stored[CLASSES]))


def _shared(value):
    """One object for equal strings (``sys.intern``): many relationships name the same entity, type and
    collection, and each request's parse makes new string objects for them (about 90 bytes each)."""
    return sys.intern(value) if type(value) is str else value


class _LastClaim:
    """What the last claim stored for each document it was handed (by ``id()``), for the change records and the
    publish that follow: the caller hands documents over and no longer changes them (storage_plugins/documents.py),
    so their bytes are not made a second time. Holding the documents keeps each ``id()`` theirs meanwhile."""

    def __init__(self, documents: Sequence[Document] = ()) -> None:
        self.documents = tuple(documents)
        self.stored: dict[int, Stored] = {}


class _StagedBatch(WritePathView):
    """One all-or-nothing batch: its writes wait here, then land in one step that never yields to the event loop.

    The plugin lives in one process and every method of it runs without suspending, so a step without an
    ``await`` is atomic for every other task, readers and writers alike. Claims are checked when made (to fail
    early) and again when they land, since writers outside the batch do not wait for it.
    """

    purpose = "an atomic batch"

    def __init__(self, storage: MemoryStorage) -> None:
        super().__init__(storage)
        self._claims: list[tuple[str, str, list[Document]]] = []
        self._published: list[tuple[str, str, list[Document]]] = []

    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        self._claims.append((kind, collection_id, list(documents)))
        self._check(kind, collection_id, documents)
        return ClaimResult(claimed=[document["id"] for document in documents])

    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        self._published.append((kind, collection_id, list(documents)))  # handed over: see documents.py

    def _check(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        for document in documents:
            if self._storage._taken(kind, collection_id, document):
                raise AtomicConflict(f"A concurrent writer wrote {document['id']} first")

    def commit(self) -> None:
        for kind, collection_id, documents in self._claims:
            self._check(kind, collection_id, documents)
        for kind, collection_id, documents in self._claims:
            self._storage._claim_now(kind, collection_id, documents)
        for kind, collection_id, documents in self._published:
            self._storage._publish_now(kind, collection_id, documents)


class _ChangeLogOfCollection:
    """One collection's change records by number, the numbers in order, their unique keys, its counter and its
    trim mark. A record is a tuple of plain values (``_change_record`` reads it: key, time, kind, id, version,
    operation, and the document as the bytes its version was stored as): CPython does not track it, and nothing
    is serialised a second time. Numbers come in order
    but for the void records that fill a lost race's numbers, so a plain dict and an appended list (an insort
    for those) cost less than a sorted map."""

    def __init__(self) -> None:
        self.records: dict[int, tuple] = {}
        self.numbers: list[int] = []
        self.keys: set[str] = set()
        self.counter = 0
        self.trimmed = 0

    def add(self, sequence: int, record: tuple) -> None:
        self.records[sequence] = record
        self.keys.add(record[0])
        if not self.numbers or self.numbers[-1] < sequence:
            self.numbers.append(sequence)
        else:
            bisect.insort(self.numbers, sequence)

    def takes_all(self, sequences: list[int], keys: list[str]) -> bool:
        """Whether none of these numbers and keys is held, when the numbers rise and all come after the
        highest held: the usual batch of a publish, checked at C speed."""
        unique = set(keys)
        return ((not self.numbers or self.numbers[-1] < sequences[0]) and sequences == sorted(set(sequences))
                and len(unique) == len(keys) and self.keys.isdisjoint(unique))

    def add_all(self, sequences: list[int], keys: list[str], records: Iterable[tuple]) -> None:
        """``add`` for numbers that ``takes_all``."""
        self.records.update(zip(sequences, records))
        self.keys.update(keys)
        self.numbers.extend(sequences)


_HELD_FIELDS = operator.itemgetter("key", "time", "kind", "id", "version", "operation")  # then the document's bytes


def _held_changes(records: NumberedChanges, claimed: dict[int, Stored]) -> Iterator[tuple]:
    """What the log keeps of each record (``_change_record`` reads it back): its fields, then its document as the
    bytes its version was stored as when it was just claimed, else as new bytes."""
    changes = records.changes
    blobs = [orjson.dumps(document) if made is None else made[BLOB]
             for document, made in zip(changes.documents, map(claimed.get, map(id, changes.documents)))]
    return zip(records.keys, itertools.repeat(changes.time), itertools.repeat(changes.kind), changes.ids,
               changes.versions, changes.operations, blobs)


def _change_record(sequence: int, held: tuple) -> Document:
    key, time, kind, document_id, version, operation, blob = held
    return {"kind": kind, "id": document_id, "version": version, "operation": operation, "document": _decode(blob),
            "time": time, "sequence": sequence, "key": key}


def _clone(value):
    """A deep copy of a document of JSON types (the few dicts kept as dicts: chunks and ACL records)."""
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


class MemoryStorage(MemorySubscriptions, MemoryLogs, Storage):
    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        # kind -> collection -> id -> the current version
        self._current: dict[str, dict[str, dict[str, Stored]]] = {kind: {} for kind in KINDS}
        # kind -> collection -> every id of the current view, sorted: a page is a bisect and a walk; an insert
        # costs O(log n), not the O(n) of a list insert, so writes do not slow down as the store grows
        self._ids: dict[str, dict[str, SortedList]] = {kind: {} for kind in KINDS}
        self._active: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}  # active documents per collection
        # relationships by the entity at each end: (collection, entity id) -> {(collection it lives in, id)}
        # (defaultdicts: a write adds with one look-up; reads use ``get``, which adds nothing)
        self._by_source: defaultdict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        self._by_destination: defaultdict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
        # kind -> collection -> id -> versions (oldest first): the version itself while there is one (most ids
        # have one: a list per id would cost 88 bytes and an object the garbage collector tracks), else a list
        self._history: dict[str, dict[str, dict[str, Stored | list[Stored]]]] = {kind: {} for kind in KINDS}
        self._chunks: dict[str, Document] = {}  # claimed oldest first, by (createdAt, id)
        self._registrations: dict[str, Document] = {}
        self._grants: dict[str, dict[str, Document]] = {}
        self._idempotency: dict[str, Document] = {}
        self._granted: dict[str, SortedSet] = {}  # principal -> ids of the collections it has some access to
        self._last_claim = _LastClaim()
        self._changes: dict[str, _ChangeLogOfCollection] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def get_current(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        stored = self._current[kind].get(collection_id, {})
        return {doc_id: _decode(stored[doc_id][BLOB]) for doc_id in set(ids) if doc_id in stored}

    async def get_active_types(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        stored = self._current[kind].get(collection_id, {})
        found = {}
        for doc_id in ids:
            held = stored.get(doc_id)
            if held is not None and held[ACTIVE]:
                found[doc_id] = held[CLASSES] or (held[TYPE],)  # a relationship keeps no tuple of its one type
        return found

    async def get_latest_versions(
        self, kind: str, collection_id: str, ids: Iterable[str]
    ) -> dict[str, Document]:
        history = self._history[kind].get(collection_id, {})
        return {doc_id: _decode(_versions(history[doc_id])[-1][BLOB]) for doc_id in set(ids) if doc_id in history}

    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        return self._claim_now(kind, collection_id, documents)

    def _claim_now(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        history = self._history[kind].setdefault(collection_id, {})
        result = ClaimResult()
        self._last_claim = _LastClaim(documents)
        claimed = self._last_claim.stored
        for document in documents:
            document_id = document["id"]
            held = history.get(document_id)
            if held is None:  # the usual case: a new id
                stored = history[document_id] = _store(kind, document)
            else:
                stored = _claim_next(history, document_id, held, kind, document)
                if stored is None:
                    result.conflicted.append(document_id)
                    continue
            claimed[id(document)] = stored
            result.claimed.append(document_id)
        return result

    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        self._publish_now(kind, collection_id, documents)

    def _publish_now(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        current = self._current[kind].setdefault(collection_id, {})
        history = self._history[kind].get(collection_id, {})
        claimed, self._last_claim = self._last_claim.stored, _LastClaim()
        moved: list[tuple[str, Stored | None, Stored]] = []  # (id, the version it replaces, the new one)
        for document in documents:
            new = claimed.get(id(document))
            version = version_of(kind, document) if new is None else new[VERSION]
            document_id = document["id"]
            old = current.get(document_id)
            if old is None or old[VERSION] < version:  # newer_than_held's rule, inline in the hottest loop
                if new is None:
                    new = _same_version(kind, history.get(document_id), version, document)
                current[document_id] = new
                moved.append((document_id, old, new))
        self._reindex(kind, collection_id, moved)

    def _taken(self, kind: str, collection_id: str, document: Document) -> bool:
        """Whether the document's version of its id is stored already (versions of an id only grow)."""
        held = self._history[kind].get(collection_id, {}).get(document["id"])
        return held is not None and _versions(held)[-1][VERSION] >= version_of(kind, document)

    # ---- all-or-nothing batches ---------------------------------------------------------------------------------

    def atomic_unavailable(self) -> str | None:
        return None

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[Storage]:
        staged = _StagedBatch(self)
        yield staged
        staged.commit()

    def _reindex(self, kind: str, collection_id: str, moved: list[tuple[str, Stored | None, Stored]]) -> None:
        """Bring the sorted ids, the active count and the edge indexes up to the versions just published, in one
        pass over them."""
        ids = self._ids[kind].get(collection_id)
        if ids is None:
            ids = self._ids[kind][collection_id] = SortedList()
        add_id = ids.add
        edges = kind == "relationships"
        by_source, by_destination = self._by_source, self._by_destination
        active_change = 0
        for document_id, old, new in moved:
            if old is None:
                add_id(document_id)
                active_change += new[ACTIVE]
            else:
                active_change += new[ACTIVE] - old[ACTIVE]
            if edges:
                key = (collection_id, document_id)
                if old is not None:
                    by_source.get(_source_end(collection_id, old), set()).discard(key)
                    by_destination.get(_destination_end(collection_id, old), set()).discard(key)
                by_source[_source_end(collection_id, new)].add(key)
                by_destination[_destination_end(collection_id, new)].add(key)
        if active_change:
            active = self._active[kind]
            active[collection_id] = active.get(collection_id, 0) + active_change

    async def _list_current(self, kind: str, collection_id: str, query: DocumentQuery) -> list[Document]:
        found: list[Document] = []
        for stored in self._selected(kind, collection_id, query):
            found.append(_decode(stored[BLOB]))
            if len(found) >= query.limit:
                break
        return found

    async def _count_current(self, kind: str, collection_id: str, query: DocumentQuery) -> int:
        if query.active_only and query.types is None and not query.equalities():
            return self._active[kind].get(collection_id, 0)
        if query.types is None and not query.equalities():
            return len(self._ids[kind].get(collection_id, ()))
        return sum(1 for _ in self._selected(kind, collection_id, query))

    def _selected(self, kind: str, collection_id: str, query: DocumentQuery) -> Iterator[Stored]:
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
        for document_id in ordered:
            stored = current[document_id]
            if query.active_only and not stored[ACTIVE]:
                continue
            if query.types is not None and not _typed(stored, query.types, query.additional_types):
                continue
            if any(stored[_EQUALITY_POSITIONS[name]] != value for name, value in equalities.items()):
                continue
            yield stored

    async def _find_edges(self, query: EdgeQuery) -> list[Document]:
        keys = sorted(self._edge_keys(query))
        if query.after is not None:
            keys = keys[bisect.bisect_right(keys, tuple(query.after)):]
        if query.limit is not None:
            keys = keys[:query.limit]
        current = self._current["relationships"]
        return [_decode(current[collection_id][document_id][BLOB]) for collection_id, document_id in keys]

    async def _count_edges(self, query: EdgeQuery) -> dict[str, int]:
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
            and (not query.active_only or current[collection_id][document_id][ACTIVE])
        }

    async def _find_frontier_edges(self, query: FrontierQuery) -> list[Document]:
        current = self._current["relationships"]
        keys: set[tuple[str, str]] = set()
        for end in query.entities:
            if query.outgoing:
                keys |= self._frontier_side(self._by_source.get(end, ()), query.outgoing_types, query)
            if query.incoming:
                keys |= self._frontier_side(self._by_destination.get(end, ()), query.incoming_types, query)
        ordered = sorted(keys)[:query.limit]
        return [_decode(current[collection_id][document_id][BLOB]) for collection_id, document_id in ordered]

    def _frontier_side(self, keys: Iterable[tuple[str, str]], types: frozenset[str] | None,
                       query: FrontierQuery) -> set[tuple[str, str]]:
        current = self._current["relationships"]
        kept = set()
        for collection_id, document_id in keys:
            stored = current[collection_id][document_id]
            if ((query.source_collections is None or collection_id in query.source_collections)
                    and (not query.active_only or stored[ACTIVE])
                    and (types is None or stored[TYPE] in types)):
                kept.add((collection_id, document_id))
        return kept

    async def get_current_across(self, kind: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Document]:
        current = self._current[kind]
        found = {}
        for collection_id, document_id in set(keys):
            stored = current.get(collection_id, {}).get(document_id)
            if stored is not None:
                found[(collection_id, document_id)] = _decode(stored[BLOB])
        return found

    async def count_by_type(self, kind: str, collection_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stored in self._current[kind].get(collection_id, {}).values():
            if stored[ACTIVE]:
                counts[stored[TYPE]] = counts.get(stored[TYPE], 0) + 1
        return counts

    async def get_version_page(
        self, kind: str, collection_id: str, document_id: str, after: int | None, limit: int
    ) -> VersionPage:
        held = self._history[kind].get(collection_id, {}).get(document_id)
        if held is None:
            return VersionPage([], 0, None)
        stored = _versions(held)
        later = [version for version in stored if after is None or version[VERSION] > after]
        page = [_decode(version[BLOB]) for version in later[:max(limit, 0)]]
        return VersionPage(page, len(stored), _decode(stored[-1][BLOB]))

    async def _scan_history(self, kind: str, after: tuple[str, str, int] | None, limit: int) -> list[tuple[str, str, int]]:
        history = self._history[kind]
        start = (after[0], after[1]) if after is not None else ("", "")
        ids = ((collection_id, document_id) for collection_id, by_id in history.items() if collection_id >= start[0]
               for document_id in by_id if (collection_id, document_id) >= start)
        keys = []
        # the next limit + 1 ids (only the first can have no version after ``after``) without sorting them all
        for collection_id, document_id in heapq.nsmallest(limit + 1, ids):
            for stored in _versions(history[collection_id][document_id]):
                key = (collection_id, document_id, stored[VERSION])
                if after is None or key > tuple(after):
                    keys.append(key)
        return keys[:limit]

    async def find_applied(
        self, kind: str, collection_id: str, ids: Iterable[str], transaction_id: str
    ) -> dict[str, Document]:
        history = self._history[kind].get(collection_id, {})
        found = {}
        for document_id in set(ids):
            held = history.get(document_id)
            for version in _versions(held) if held is not None else ():
                if version[TRANSACTION] == transaction_id:
                    found[document_id] = _decode(version[BLOB])
        return found

    async def enqueue_chunks(self, chunks: Sequence[Document]) -> None:
        clashes = [chunk["id"] for chunk in chunks if chunk["id"] in self._chunks]
        if clashes:
            raise DuplicateError(f"chunks already exist: {', '.join(clashes)}")
        for chunk in chunks:
            stored = {key: _clone(value) for key, value in chunk.items() if key != "items"}
            if "items" in chunk:  # the bulk of a chunk, read once by the worker that claims it: kept serialised
                stored["items"] = _compact(orjson.dumps(chunk["items"]))
            self._chunks[chunk["id"]] = {
                **stored, **NEW_CHUNK
            }

    async def claim_chunk(self, worker_id: str, now: float, lease_seconds: float) -> Document | None:
        claimable = [
            chunk for chunk in self._chunks.values()
            if chunk["state"] == "pending" or (chunk["state"] == "processing" and chunk["leaseExpiresAt"] <= now)
        ]
        if not claimable:
            return None
        chunk = min(claimable, key=lambda chunk: (chunk["createdAt"], chunk["id"]))  # the oldest
        chunk.update(leased(worker_id, now + lease_seconds), attempts=chunk["attempts"] + 1)
        claimed = {key: _clone(value) for key, value in chunk.items() if key != "items"}
        if "items" in chunk:
            claimed["items"] = _decode(chunk["items"])
        return claimed

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
            chunk.update(UNLEASED, attempts=chunk["attempts"] - 1)
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

    # ---- change log (storage_plugins/changes.py) ---------------------------------------------------------------

    def _change_log(self, collection_id: str) -> _ChangeLogOfCollection:
        log = self._changes.get(collection_id)
        if log is None:
            log = self._changes[collection_id] = _ChangeLogOfCollection()
        return log

    async def _advance_counter(self, collection_id: str, count: int, at_least: int) -> int:
        log = self._change_log(collection_id)
        log.counter = max(log.counter, at_least) + count
        return log.counter

    async def _counter(self, collection_id: str) -> int:
        return self._change_log(collection_id).counter

    async def _insert_changes(self, collection_id: str, records: Sequence[Document]) -> list[int]:
        log = self._change_log(collection_id)
        claimed = self._last_claim.stored  # a version's bytes from its claim: the publish that follows records it
        if isinstance(records, NumberedChanges):  # the publish of versions: the columns as they are
            sequences = list(records.sequences)
            if records and log.takes_all(sequences, records.keys):
                log.add_all(sequences, records.keys, _held_changes(records, claimed))
                return []
        failed = []
        for index, record in enumerate(records):
            if record["sequence"] in log.records or record["key"] in log.keys:
                failed.append(index)
                continue
            made = claimed.get(id(record["document"]))
            log.add(record["sequence"], (*_HELD_FIELDS(record), orjson.dumps(record["document"]) if made is None
                                         else made[BLOB]))
        return failed

    async def _taken_sequences(self, collection_id: str, sequences: Iterable[int]) -> set[int]:
        records = self._change_log(collection_id).records
        return {sequence for sequence in sequences if sequence in records}

    async def _change_records(self, collection_id: str, after: int, limit: int) -> list[Document]:
        log = self._change_log(collection_id)
        start = bisect.bisect_right(log.numbers, after)
        return [_change_record(number, log.records[number]) for number in log.numbers[start:start + max(limit, 0)]]

    async def _trimmed_up_to(self, collection_id: str) -> int:
        return self._change_log(collection_id).trimmed

    async def _trim(self, collection_id: str, up_to: int) -> None:
        log = self._change_log(collection_id)
        log.trimmed = max(log.trimmed, up_to)
        end = bisect.bisect_right(log.numbers, log.trimmed)
        for number in log.numbers[:end]:
            log.keys.discard(log.records.pop(number)[0])
        del log.numbers[:end]

    async def _newest_before(self, collection_id: str, moment: str) -> int:
        records = self._change_log(collection_id).records
        old = [(record[1], number) for number, record in records.items() if record[1] < moment]
        return max(old, default=("", 0))[1]

    async def register_collection(self, record: Document) -> None:
        if record["collectionId"] in self._registrations:
            raise DuplicateError(f"collection {record['collectionId']} is already registered")
        self._registrations[record["collectionId"]] = _clone(record)

    async def put_grant(self, collection_id: str, principal: str, record: Document) -> None:
        self._grants.setdefault(collection_id, {})[principal] = _clone(record)
        granted = self._granted.setdefault(principal, SortedSet())
        if record["access"]:
            granted.add(collection_id)
        else:
            granted.discard(collection_id)

    async def remove_expired_idempotency_keys(self, now: float) -> None:
        for key_id in [k for k, held in self._idempotency.items() if held["expiresAt"] < now]:
            del self._idempotency[key_id]

    async def insert_idempotency_key(self, record: Document) -> Document | None:
        held = self._idempotency.get(record["id"])
        if held is not None:
            return _clone(held)
        self._idempotency[record["id"]] = _clone(record)
        return None

    async def get_idempotency_key(self, key_id: str) -> Document | None:
        held = self._idempotency.get(key_id)
        return _clone(held) if held is not None else None

    async def finish_idempotency_key(self, key_id: str, owner: str, fields: Document) -> bool:
        held = self._idempotency.get(key_id)
        if held is None or held["owner"] != owner:
            return False
        held.update(_clone(fields))
        return True

    async def release_idempotency_key(self, key_id: str, owner: str) -> bool:
        held = self._idempotency.get(key_id)
        if held is None or held["owner"] != owner:
            return False
        del self._idempotency[key_id]
        return True

    async def get_acl(self, collection_id: str) -> tuple[Document | None, list[Document]]:
        registration = self._registrations.get(collection_id)
        grants = self._grants.get(collection_id, {}).values()
        return (_clone(registration) if registration else None, [_clone(g) for g in grants])

    async def list_granted_collections(self, principal: str, after: str | None, limit: int) -> GrantedCollections:
        granted = self._granted.get(principal, SortedSet())
        following = granted.irange(minimum=after, inclusive=(False, False)) if after is not None else iter(granted)
        page = [(_clone(self._registrations[cid]) if cid in self._registrations else None,
                 _clone(self._grants[cid][principal])) for cid in itertools.islice(following, limit)]
        return GrantedCollections(page=page, total=len(granted))



def _versions(held: Stored | list[Stored]) -> list[Stored]:
    """An id's versions in the history, oldest first, from what ``_history`` keeps for it."""
    return held if type(held) is list else [held]


def _claim_next(history: dict[str, Stored | list[Stored]], document_id: str, held: Stored | list[Stored], kind: str,
                document: Document) -> Stored | None:
    """Add the document to its id's versions and return what was stored; None (nothing added) when its version
    is taken already."""
    versions = _versions(held)
    wanted = version_of(kind, document)
    if any(version[VERSION] == wanted for version in versions):
        return None
    stored = _store(kind, document)
    versions = [*versions, stored]
    if versions[-2][VERSION] > wanted:
        versions.sort(key=lambda version: version[VERSION])
    history[document_id] = versions
    return stored


def _same_version(kind: str, held: Stored | list[Stored] | None, version: int, document: Document) -> Stored:
    """The history's tuple for ``document`` when the history holds that very version with the same bytes, else
    a new one: the usual publish of a version just claimed then keeps one stored copy for both views."""
    blob = orjson.dumps(document)
    for stored in reversed(_versions(held)) if held is not None else ():
        if stored[VERSION] == version:
            return stored if stored[BLOB] == blob else _store(kind, document, blob)
    return _store(kind, document, blob)


def _source_end(collection_id: str, relationship: Stored) -> tuple[str, str | None]:
    return (collection_id, relationship[SOURCE])


def _destination_end(collection_id: str, relationship: Stored) -> tuple[str, str | None]:
    destination_collection = relationship[DESTINATION_COLLECTION]
    return (collection_id if destination_collection is None else destination_collection, relationship[DESTINATION])
