"""The storage interface every plugin implements, and the plugin registry.

Every method is batch-first: it takes all the ids or documents of one request at once, so a request costs a
constant number of storage calls whatever its item count. Documents are plain dicts of JSON types; plugins
must return copies the caller may mutate, never their own internal objects.

Versioned documents ("kinds": ``entities`` and ``relationships``) live twice: the *history* holds one
document per (collection, id, version) and is the authority on which versions exist; the *current* view
holds the newest version of each id for fast reads. A writer claims version N+1 by inserting it into the
history, where (collection, id, version) is unique, so of two concurrent writers exactly one wins; only the
winner then moves the current view forward (*publishes* the version).

A claimed version is committed: it is never taken back. A writer that dies or loses the storage between the
claim and the publish (kill -9, a 503, an election) leaves it claimed but unpublished, and whoever next relies
on that id publishes it first (``roll_forward``, ``publish_behind``): a read of the id, its next writer, the
re-application of an async chunk, ``erapi storage repair``. Rolling forward is safe whoever does it and however
often, because the claim made the version unique and publishing never moves the current view backwards.

Lists read the current view in pages ordered by a key that never changes (``id``, or the relationship's
collection and ``id`` across collections), so that a reader paging with the last key of one page as the start
of the next sees every document that existed when it began exactly once, however others write meanwhile.
Each page is one call; each count one more.

Log records (status records of transactions) and ACL records (collection registrations and grants) share
the *log store*; they are told apart by the methods that write them, never by anything a client sends.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import entry_points
from typing import Any, AsyncIterator, Iterable, Mapping, NamedTuple, Sequence

Document = dict[str, Any]

KINDS = ("entities", "relationships")
VERSION_FIELD = {"entities": "sysEntityVersion", "relationships": "sysRelationshipVersion"}
TYPE_FIELD = {"entities": "entityType", "relationships": "relationshipType"}
ENTRY_POINT_GROUP = "erapi.storage_plugins"
# what the batch write path reads of storage; a view for one batch (dry run, atomic) passes these through
WRITE_PATH_READS = frozenset({"get_current", "get_active_types", "get_latest_versions", "find_applied", "get_acl",
                              "name"})


class WritePathView:
    """A view of a plugin for one batch (a dry run, an atomic batch): the write path's reads pass through to
    the plugin, its two writes (``claim_versions``, ``put_current``) are the subclass's, and any other call is
    refused, so that a write added to the path later cannot slip past the view unnoticed."""

    purpose = "a view for one batch"

    def __init__(self, storage: "Storage") -> None:
        self._storage = storage

    def __getattr__(self, name: str):
        if name not in WRITE_PATH_READS:
            raise AttributeError(f"{self.purpose} does not call storage.{name}")
        return getattr(self._storage, name)


IDEMPOTENCY_SWEEP_EVERY = 100  # claims of idempotency keys between two removals of expired records


class StorageError(Exception):
    """The storage backend failed or is unreachable; the request may be retried later (HTTP 503)."""


class DuplicateError(StorageError):
    """A document with the same unique key already exists."""


class AtomicConflict(Exception):
    """A concurrent writer took a version an all-or-nothing batch needed; nothing of the batch was kept."""


class ConfigurationError(Exception):
    """The configuration names something that does not exist or is out of range."""


def version_of(kind: str, document: Mapping[str, Any]) -> int:
    return document["sysData"][VERSION_FIELD[kind]]


@dataclass(frozen=True)
class LogQuery:
    """Filters of the status tracker. Every filter given must match; ``None`` means "any".

    Results are ordered by (``receivedTimestamp``, ``id``) ascending; ``after`` is the sort key of the last
    record of the previous page, and only records strictly after it are returned.
    """

    collection_id: str
    transaction_id: str | None = None
    relationship_id: str | None = None
    entity_id: str | None = None
    correlation_id: str | None = None
    start_time: str | None = None  # inclusive, compared with receivedTimestamp (ISO 8601, UTC, same format)
    end_time: str | None = None  # inclusive
    after: tuple[str, str] | None = None
    limit: int = 100


@dataclass(frozen=True)
class DocumentQuery:
    """Which current documents of one kind in one collection a list wants, and which page of them.

    Every filter given must match; ``None`` means "any". The equality filters name fields of relationships
    (an entity has none of them, so a query of entities that sets one matches nothing). ``types`` matches the
    stored type field (``entityType`` or ``relationshipType``, see TYPE_FIELD) against a set of names, exactly
    as stored: the caller passes every spelling (aliases) and, for subclasses, every descendant; an empty set
    matches nothing. ``active_only`` leaves out soft-deleted documents (``isActive: false``).

    Results are ordered by ``id`` ascending (code-point order, the same as UTF-8 byte order, so every plugin
    agrees); only ids strictly greater than ``after_id`` are returned, at most ``limit`` (``limit <= 0``: none).
    """

    source_entity_id: str | None = None
    destination_entity_id: str | None = None
    destination_collection_id: str | None = None
    types: frozenset[str] | None = None
    active_only: bool = True
    after_id: str | None = None
    limit: int = 100

    def equalities(self) -> dict[str, str]:
        """The equality filters that are set, by the document field they compare."""
        fields = {
            "sourceEntityId": self.source_entity_id,
            "destinationEntityId": self.destination_entity_id,
            "destinationERCollectionId": self.destination_collection_id,
        }
        return {name: value for name, value in fields.items() if value is not None}


@dataclass(frozen=True)
class EdgeQuery:
    """The relationships that touch one entity, across collections, and which page of them.

    The entity is (``collection_id``, ``entity_id``). *Outgoing* relationships are stored in ``collection_id``
    with ``sourceEntityId == entity_id``; *incoming* ones are stored in any collection with
    ``destinationERCollectionId == collection_id`` and ``destinationEntityId == entity_id``. A relationship
    that is both (a loop) is returned once. ``source_collections``, when not None, keeps only relationships
    stored in those collections (outgoing ones included: they live in ``collection_id``).

    Results are ordered by (``sourceERCollectionId``, ``id``), the collection a relationship lives in and its
    id; only keys strictly greater than ``after`` are returned, at most ``limit`` (None: all).
    """

    collection_id: str
    entity_id: str
    outgoing: bool = True
    incoming: bool = True
    source_collections: frozenset[str] | None = None
    active_only: bool = True
    after: tuple[str, str] | None = None
    limit: int | None = 100


@dataclass(frozen=True)
class FrontierQuery:
    """The relationships touching any entity of a frontier, across collections: one hop of a graph traversal.

    ``entities`` are (collection, entity id) pairs. A relationship is *outgoing* from a frontier entity when it
    is stored in the entity's collection with ``sourceEntityId`` = the entity, *incoming* when it is stored in
    any collection with ``destinationEntityId`` = the entity and ``destinationERCollectionId`` = the entity's
    collection (a relationship naming no destination collection points into its own). ``outgoing`` and
    ``incoming`` say which sides are followed; ``outgoing_types`` and ``incoming_types``, when not None, keep
    only relationships of that side whose stored ``relationshipType`` is one of the names, exactly as stored
    (the caller passes every spelling; an empty set keeps none). ``source_collections``, when not None, keeps
    only relationships stored in those collections.

    Each matching relationship is returned once, even when it touches several frontier entities (a loop, or an
    edge between two of them), ordered by (``sourceERCollectionId``, ``id``), at most ``limit`` (None: all).
    """

    entities: frozenset[tuple[str, str]]
    outgoing: bool = True
    incoming: bool = True
    outgoing_types: frozenset[str] | None = None
    incoming_types: frozenset[str] | None = None
    source_collections: frozenset[str] | None = None
    active_only: bool = True
    limit: int | None = None

    def ids_by_collection(self) -> dict[str, list[str]]:
        """The frontier's entity ids per collection, each list sorted (so plugins build the same queries)."""
        grouped: dict[str, list[str]] = {}
        for collection_id, entity_id in sorted(self.entities):
            grouped.setdefault(collection_id, []).append(entity_id)
        return grouped


class LogTransition(NamedTuple):
    """Move one status record to ``state`` if (and only if) its current state is one of ``from_states``.

    The move sets ``state`` and ``message`` and appends ``{"timestamp", "unixTimestamp", "state"}`` to
    ``stateHistory``. Because a final state is never in ``from_states`` by default, applying the same
    transition twice changes nothing the second time. Immutable; a NamedTuple rather than a frozen dataclass
    because an async job makes two per item, and a frozen dataclass takes twice as long to build.
    """

    record_id: str
    state: str
    message: str
    at: datetime
    from_states: tuple[str, ...] = ("Requested", "Processing")

    def history_entry(self) -> Document:
        return {
            "timestamp": self.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "unixTimestamp": int(self.at.timestamp() * 1000),
            "state": self.state,
        }


class VersionProblem(NamedTuple):
    """One id whose history and current view disagree, as ``Storage.audit_versions`` finds it."""

    kind: str
    collection_id: str
    id: str
    newest: int  # the highest version in the history
    current: int | None  # the current view's version; None when the id is absent from it
    missing: int  # how many of the versions 1..newest the history lacks

    @property
    def unpublished(self) -> bool:
        """The history's newest version was claimed but never published: ``roll_forward`` fixes it."""
        return self.current is None or self.current < self.newest

    def describe(self) -> str:
        where = f"{self.kind} {self.collection_id}/{self.id}"
        problems = []
        if self.unpublished:
            shown = "nothing" if self.current is None else f"version {self.current}"
            problems.append(f"version {self.newest} is claimed in the history, the current view shows {shown}")
        elif self.current > self.newest:
            problems.append(f"the current view shows version {self.current}, above the history's newest "
                            f"{self.newest}")
        if self.missing:
            problems.append(f"the history lacks {self.missing} of versions 1..{self.newest}")
        return f"{where}: {'; '.join(problems)}"


@dataclass
class ClaimResult:
    """Outcome of claiming versions in the history: which ids won, which lost to a concurrent writer."""

    claimed: list[str] = field(default_factory=list)
    conflicted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VersionPage:
    """One page of an id's history and what a caller needs beside it, from one storage call."""

    versions: list[Document]  # oldest first, strictly after the version asked for, at most the limit
    total: int  # how many versions the id has in all; 0 when it never existed
    newest: Document | None  # the id's newest version (maybe claimed but unpublished), None when total is 0


@dataclass(frozen=True)
class GrantedCollections:
    """One page of the collections a principal holds a grant on, and how many there are in all."""

    page: list[tuple[Document | None, Document]]  # (registration, grant record), by collectionId ascending
    total: int


class Storage(abc.ABC):
    """A storage plugin. Instances are created from config, then opened once and closed once."""

    name: str = ""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and prepare (indexes, tables). Idempotent with respect to existing data."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Safe to call on a plugin whose open() failed."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the backend answers; raise StorageError otherwise."""

    # ---- versioned documents -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def get_current(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        """The newest stored version of each id in the current view, keyed by id.

        Ids that do not exist are absent from the result; an empty ``ids`` returns ``{}``. Inactive
        (soft-deleted) documents are returned too: filtering is the caller's business.
        """

    @abc.abstractmethod
    async def get_active_types(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, str]:
        """The type (the TYPE_FIELD of the kind) of each id whose current document is active, keyed by id.

        Missing and inactive (``isActive: false``) ids are absent. What the write path needs of the entities a
        batch names, without reading whole documents.
        """

    @abc.abstractmethod
    async def get_latest_versions(
        self, kind: str, collection_id: str, ids: Iterable[str]
    ) -> dict[str, Document]:
        """The highest version of each id found in the history, keyed by id (absent ids omitted).

        Used after a lost claim: the history, not the current view, says which version is the newest.
        """

    @abc.abstractmethod
    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        """Insert each document into the history, keyed by (collection, ``id``, version).

        A document whose key already exists is not written and its id is reported in ``conflicted``;
        the others are written and reported in ``claimed``. An empty batch is a no-op. Two documents of the
        same batch must not share an id (the caller guarantees it).
        """

    @abc.abstractmethod
    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        """Move the current view forward: store each document unless a newer or equal version is stored.

        Never moves a document backwards, so it is safe to call with stale documents and in any order.
        An empty batch is a no-op.
        """

    @abc.abstractmethod
    async def get_versions(self, kind: str, collection_id: str, document_id: str) -> list[Document]:
        """Every version of one id from the history, oldest first; ``[]`` when the id never existed."""

    @abc.abstractmethod
    async def get_version_page(
        self, kind: str, collection_id: str, document_id: str, after: int | None, limit: int
    ) -> VersionPage:
        """The versions of one id numbered above ``after`` (all when None), oldest first, at most ``limit``
        (``limit <= 0``: none), with the id's version count and newest version: a page of ``/versions``
        costs the same whatever the length of the history."""

    # ---- claimed but unpublished versions (see the module's docstring) ------------------------------------------
    # Built on the methods above, so every plugin shares the same semantics.

    async def publish_behind(self, kind: str, collection_id: str, newest: Sequence[Document]) -> list[Document]:
        """Publish each of ``newest`` (versions read from the history) whose id's current view is absent or
        older, and return those; the others are left alone. One read, and one write when something is behind."""
        if not newest:
            return []
        current = await self.get_current(kind, collection_id, [document["id"] for document in newest])
        behind = [
            document for document in newest
            if document["id"] not in current or version_of(kind, current[document["id"]]) < version_of(kind, document)
        ]
        if behind:
            await self.put_current(kind, collection_id, behind)
        return behind

    async def roll_forward(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        """Finish the claimed but unpublished versions of ``ids``: where the current view is absent or behind
        the history, the history's newest version is published. Returns the newest version of each id found in
        the history, keyed by id (ids without history omitted), as ``get_latest_versions`` does."""
        latest = await self.get_latest_versions(kind, collection_id, ids)
        await self.publish_behind(kind, collection_id, list(latest.values()))
        return latest

    @abc.abstractmethod
    async def scan_history(self, kind: str, after: tuple[str, str, int] | None, limit: int) -> list[tuple[str, str, int]]:
        """The keys (collection, id, version) of the whole history of a kind, across collections, in that order
        (strings in code-point order), strictly after ``after``, at most ``limit`` (``limit <= 0``: none)."""

    async def audit_versions(self, kind: str, page_size: int = 1000) -> AsyncIterator[tuple[int, list[VersionProblem]]]:
        """Walk the history of a kind page by page and compare each id with the current view; yield, per page,
        how many ids were checked and the problems found among them. Each page costs one history read and one
        current-view read per collection it touches. Claims of writers still running show up as unpublished
        until they publish (harmless to roll forward, see the module's docstring)."""
        after: tuple[str, str, int] | None = None
        carried: list[tuple[str, str, int]] = []  # the versions of an id that may continue on the next page
        while True:
            page = await self.scan_history(kind, after, page_size)
            finished = len(page) < page_size
            keys = carried + page
            if page:
                after = page[-1]
            cut = len(keys)
            while not finished and cut and keys[cut - 1][:2] == keys[-1][:2]:
                cut -= 1
            complete, carried = keys[:cut], keys[cut:]
            yield await self._version_problems(kind, complete)
            if finished:
                return

    async def _version_problems(self, kind: str, keys: list[tuple[str, str, int]]) -> tuple[int, list[VersionProblem]]:
        versions: dict[str, dict[str, list[int]]] = {}  # collection -> id -> versions, in scan order
        for collection_id, document_id, version in keys:
            versions.setdefault(collection_id, {}).setdefault(document_id, []).append(version)
        problems, checked = [], 0
        for collection_id, by_id in versions.items():
            current = await self.get_current(kind, collection_id, by_id)
            for document_id, held in by_id.items():
                checked += 1
                shown = version_of(kind, current[document_id]) if document_id in current else None
                problem = VersionProblem(kind, collection_id, document_id, held[-1], shown, held[-1] - len(held))
                if shown != problem.newest or problem.missing:
                    problems.append(problem)
        return checked, problems

    # ---- lists of versioned documents ---------------------------------------------------------------------------
    # Not abstract, so that a plugin written before lists existed still loads; every built-in implements them.

    @abc.abstractmethod
    async def list_current(self, kind: str, collection_id: str, query: DocumentQuery) -> list[Document]:
        """One page of the current view of a collection: the documents matching ``query``, in ``id`` order,
        after ``query.after_id``, at most ``query.limit``. An empty or unknown collection gives ``[]``."""

    @abc.abstractmethod
    async def count_current(self, kind: str, collection_id: str, query: DocumentQuery) -> int:
        """How many current documents match ``query``'s filters; ``after_id`` and ``limit`` are ignored."""

    @abc.abstractmethod
    async def find_edges(self, query: EdgeQuery) -> list[Document]:
        """Current relationships touching one entity from any collection, in (collection, id) order (see
        EdgeQuery). Each document's ``sourceERCollectionId`` tells the collection it lives in."""

    @abc.abstractmethod
    async def count_edges(self, query: EdgeQuery) -> dict[str, int]:
        """How many relationships match ``query``, per collection they live in (collections with none are
        absent); ``after`` and ``limit`` are ignored. One call tells both the total and where they live."""

    @abc.abstractmethod
    async def find_frontier_edges(self, query: FrontierQuery) -> list[Document]:
        """Current relationships touching any entity of ``query.entities`` (see FrontierQuery), from any
        collection, in (collection, id) order, each once, at most ``query.limit``: one hop of a traversal for the
        whole frontier in one call. An empty frontier, or neither side followed, gives ``[]``; unknown entities
        and collections contribute nothing."""

    @abc.abstractmethod
    async def get_current_across(self, kind: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Document]:
        """The current document of each (collection, id) of ``keys``, across collections, in one call, keyed
        by (collection, id). Absent keys are left out; inactive documents are returned too (as ``get_current``);
        an empty ``keys`` gives ``{}``."""

    @abc.abstractmethod
    async def count_by_type(self, kind: str, collection_id: str) -> dict[str, int]:
        """How many active current documents of a collection there are per stored type name (TYPE_FIELD);
        ``{}`` for an empty or unknown collection."""

    # ---- log store: status records ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_logs(self, records: Sequence[Document]) -> None:
        """Append status records (each with ``id`` unique within its collection, ``serviceData.erCollectionId`` set).

        An empty batch is a no-op. Raises DuplicateError when a record id already exists; records of the
        batch without a clash are still written.
        """

    @abc.abstractmethod
    async def find_logs(self, query: LogQuery) -> list[Document]:
        """Status records matching ``query``, at most ``query.limit``, in (receivedTimestamp, id) order."""

    @abc.abstractmethod
    async def count_logs(self, query: LogQuery) -> int:
        """How many status records match ``query``'s filters; ``after`` and ``limit`` are ignored."""

    @abc.abstractmethod
    async def transition_logs(self, collection_id: str, transitions: Sequence[LogTransition]) -> int:
        """Apply each transition to the status record of that id in the collection; return how many moved.

        A record that is absent, or whose state is not in the transition's ``from_states``, is left alone.
        """

    @abc.abstractmethod
    async def count_log_states(self, collection_id: str, transaction_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """For each of the transactions, how many of its item records (``requestObject`` other than ``Job``)
        are in each state, keyed by transaction id; a transaction without item records is absent. One call for
        a whole page of job records, however many it holds; no ids, no result."""

    # ---- versioned documents written by one transaction -----------------------------------------------------

    @abc.abstractmethod
    async def find_applied(
        self, kind: str, collection_id: str, ids: Iterable[str], transaction_id: str
    ) -> dict[str, Document]:
        """For each id, the history version written by ``transaction_id`` (``sysData.sysTransactionId``).

        Ids this transaction never wrote are absent. Lets a re-applied job chunk skip what it already did.
        """

    # ---- job queue ---------------------------------------------------------------------------------------------
    # A chunk is a document with ``id`` (unique), ``ercollectionid``, ``itemCount`` and ``createdAt``; the plugin
    # adds and manages ``state`` ("pending", "processing", "done", "failed"), ``attempts``, ``leaseOwner`` and
    # ``leaseExpiresAt`` (seconds since the epoch).

    @abc.abstractmethod
    async def enqueue_chunks(self, chunks: Sequence[Document]) -> None:
        """Store new chunks as pending. An empty batch is a no-op; DuplicateError for an existing id (whether
        the other chunks of that batch were stored is unspecified: callers enqueue fresh ids only)."""

    @abc.abstractmethod
    async def claim_chunk(self, worker_id: str, now: float, lease_seconds: float) -> Document | None:
        """Atomically take the oldest chunk (by ``createdAt``, then ``id``) that is pending, or processing with a
        lease expired at ``now``.

        The chunk becomes processing, owned by ``worker_id`` until ``now + lease_seconds``, with ``attempts``
        incremented; it is returned in that new state. None when nothing can be claimed. Two workers never
        hold the same chunk at once.
        """

    @abc.abstractmethod
    async def renew_chunk(self, chunk_id: str, worker_id: str, lease_expires_at: float) -> bool:
        """Extend the lease; False (and no change) when the worker no longer owns the processing chunk."""

    @abc.abstractmethod
    async def finish_chunk(self, chunk_id: str, worker_id: str, state: str) -> bool:
        """Mark the chunk ``done`` or ``failed`` if the worker still owns it; False otherwise."""

    @abc.abstractmethod
    async def release_chunk(self, chunk_id: str, worker_id: str) -> bool:
        """Hand an owned chunk back as pending (graceful shutdown), undoing the attempt; False if not owned."""

    @abc.abstractmethod
    async def pending_items(self, collection_id: str | None) -> int:
        """Items in pending or processing chunks, of one collection or (None) of all."""

    # ---- all-or-nothing batches -------------------------------------------------------------------------------
    # Not abstract: a plugin that cannot give the guarantee keeps these defaults and atomic batches are refused.

    def atomic_unavailable(self) -> str | None:
        """None when ``atomic()`` gives all-or-nothing writes on this backend; else why not, in words a client
        can act on (it is the message of the 400 that refuses ``atomic=true``). Valid once the plugin is open."""
        return f"the {self.name or type(self).__name__} storage plugin cannot write a batch all or nothing"

    def atomic(self) -> contextlib.AbstractAsyncContextManager["Storage"]:
        """A view of this storage for one all-or-nothing batch, for the write path's calls (WRITE_PATH_READS,
        ``claim_versions``, ``put_current``). Its writes are kept only if the block ends without an exception,
        and then all at once: no reader ever sees some of them without the others. A claim that meets a version
        already stored raises AtomicConflict (at the claim or when the block ends); nothing is kept. Raises
        StorageError when ``atomic_unavailable()`` gives a reason."""
        raise StorageError(self.atomic_unavailable() or "atomic batches are not implemented by this plugin")

    # ---- idempotency keys -------------------------------------------------------------------------------------
    # A record is a document with ``id`` (unique: the service derives it from the caller's key, principal and
    # collection), ``owner`` (who holds it: a fresh value per claim) and ``expiresAt`` (seconds since the epoch);
    # the service keeps its own fields in it (request fingerprint, state, lease, the answer). Records outlive
    # processes: they are how a retry reaching another process, or the same one after a restart, finds the
    # first request's answer. A record whose ``expiresAt`` has passed may be removed by the plugin at any time.

    @abc.abstractmethod
    async def claim_idempotency_key(self, record: Document) -> Document | None:
        """Store ``record`` if no record of its ``id`` exists, and return None; otherwise store nothing and return
        the record that holds the id (whatever its age: expiry is the caller's business). Of concurrent claims
        of one id, in any number of processes, exactly one returns None."""

    @abc.abstractmethod
    async def get_idempotency_key(self, key_id: str) -> Document | None:
        """The record of ``key_id``, or None."""

    @abc.abstractmethod
    async def finish_idempotency_key(self, key_id: str, owner: str, fields: Document) -> bool:
        """Set ``fields`` on the record of ``key_id`` if ``owner`` still holds it; False (and no change) otherwise."""

    @abc.abstractmethod
    async def release_idempotency_key(self, key_id: str, owner: str) -> bool:
        """Remove the record of ``key_id`` if ``owner`` holds it, so the id can be claimed again; False otherwise."""

    # ---- log store: ACL library ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def register_collection(self, record: Document) -> None:
        """Store a collection registration (``collectionId`` unique). DuplicateError if it is registered."""

    @abc.abstractmethod
    async def put_grant(self, collection_id: str, principal: str, record: Document) -> None:
        """Store the grant of ``principal`` on a collection, replacing any earlier grant of that principal."""

    @abc.abstractmethod
    async def get_acl(self, collection_id: str) -> tuple[Document | None, list[Document]]:
        """The registration (or None when unregistered) and every grant of one collection, in no set order."""

    @abc.abstractmethod
    async def list_granted_collections(self, principal: str, after: str | None, limit: int) -> GrantedCollections:
        """The collections on which ``principal`` holds a grant with some access, each with its
        registration and that grant, ordered by ``collectionId`` (code-point order), only ids strictly greater
        than ``after`` (None: from the first), at most ``limit``. A grant whose access is empty (a revocation)
        does not count. ``total`` counts every such collection, whatever ``after`` and ``limit``. The
        registration is None for a grant on an unregistered collection (the ACL library never writes one).
        """


def available_plugins() -> dict[str, Any]:
    """Plugins registered through the ``erapi.storage_plugins`` entry-point group, by name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def create_storage(name: str, settings: Mapping[str, Any]) -> Storage:
    """Instantiate the plugin called ``name`` with its settings; ConfigurationError lists the valid names."""
    plugins = available_plugins()
    if name not in plugins:
        valid = ", ".join(sorted(plugins)) or "none installed"
        raise ConfigurationError(f"unknown storage plugin {name!r}; valid plugins: {valid}")
    try:
        plugin_class = plugins[name].load()
    except ImportError as error:
        raise ConfigurationError(f"storage plugin {name!r} cannot be loaded: {error}") from error
    return plugin_class(**settings)
