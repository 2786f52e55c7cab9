"""DocumentStore: the storage of versioned documents, their history, lists and edges.

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

The two rules every plugin shares are written here once. *Only move forward*: ``newer_than_held`` decides which
versions move the current view (a plugin that compares versions on its server, in the write itself, states the
same rule in its query language). *Page in this order*: each paged read (``PAGED``) is the interface's own
method, which answers what asks for nothing (no room on the page, a filter nothing can match) and otherwise
calls the plugin's primitive of the same name with a leading ``_``, which fills the page in the stated order.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterable, Mapping, NamedTuple, Sequence

from erapi import kinds
from storage_plugins.common import Document, StorageError

if TYPE_CHECKING:
    from storage_plugins.base import Storage

# plugins see a kind as its name; the names of its fields come from its description (erapi/kinds.py)
KINDS = tuple(kind.name for kind in kinds.KINDS)
VERSION_FIELD = {kind.name: kind.version_field for kind in kinds.KINDS}
TYPE_FIELD = {kind.name: kind.type_field for kind in kinds.KINDS}
# the paged reads (see the module's docstring), each by the name of the primitive a plugin supplies for it
PAGED = {name: f"_{name}" for name in ("list_current", "count_current", "find_edges", "count_edges",
                                        "find_frontier_edges", "scan_history")}
EVERY_VERSION = 2**31 - 1  # a page size no history reaches (every backend takes it as a limit)
# An entity's other classes (Brick says it is of several): a list of type names, absent when it has none
ADDITIONAL_TYPES_FIELD = "additionalEntityTypes"


def version_of(kind: str, document: Mapping[str, Any]) -> int:
    return document["sysData"][VERSION_FIELD[kind]]


def newer_than_held(kind: str, held: Mapping[str, int], documents: Iterable[Document]) -> list[Document]:
    """*Only move forward*, the current view's rule: of ``documents`` (versions of ``kind``), the newest of each id,
    kept when its version is above the one ``held`` for the id (the current view's versions by id; an id absent
    from ``held`` is behind every version). In the order of their ids' first appearance in ``documents``."""
    newest: dict[str, Document] = {}
    for document in documents:
        kept = newest.get(document["id"])
        if kept is None or version_of(kind, kept) < version_of(kind, document):
            newest[document["id"]] = document
    return [document for document_id, document in newest.items()
            if document_id not in held or held[document_id] < version_of(kind, document)]


@dataclass(frozen=True)
class DocumentQuery:
    """Which current documents of one kind in one collection a list wants, and which page of them.

    Every filter given must match; ``None`` means "any". The equality filters name fields of relationships
    (an entity has none of them, so a query of entities that sets one matches nothing). ``types`` matches the
    stored type field (``entityType`` or ``relationshipType``, see TYPE_FIELD) against a set of names, exactly
    as stored: the caller passes every spelling (aliases) and, for subclasses, every descendant; an empty set
    matches nothing. With ``additional_types`` an entity also matches when one of its ADDITIONAL_TYPES_FIELD
    names is in ``types`` (subclass-aware lists; no effect on relationships). ``active_only`` leaves out
    soft-deleted documents (``isActive: false``).

    Results are ordered by ``id`` ascending (code-point order, the same as UTF-8 byte order, so every plugin
    agrees); only ids strictly greater than ``after_id`` are returned, at most ``limit`` (``limit <= 0``: none).
    """

    source_entity_id: str | None = None
    destination_entity_id: str | None = None
    destination_collection_id: str | None = None
    types: frozenset[str] | None = None
    additional_types: bool = False
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

    def matches_nothing(self, kind: str) -> bool:
        """An empty set of types, or (for entities) an equality filter: no document of ``kind`` can match."""
        return (self.types is not None and not self.types) or (kind != "relationships" and bool(self.equalities()))


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

    def matches_nothing(self) -> bool:
        """Neither side followed, or no collection to take relationships from."""
        return not (self.outgoing or self.incoming) or self.source_collections == frozenset()


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

    def matches_nothing(self) -> bool:
        """An empty frontier, neither side followed, or no collection to take relationships from."""
        return not self.entities or not (self.outgoing or self.incoming) or self.source_collections == frozenset()

    def ids_by_collection(self) -> dict[str, list[str]]:
        """The frontier's entity ids per collection, each list sorted (so plugins build the same queries)."""
        grouped: dict[str, list[str]] = {}
        for collection_id, entity_id in sorted(self.entities):
            grouped.setdefault(collection_id, []).append(entity_id)
        return grouped


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


class DocumentStore(abc.ABC):
    """Versioned documents: the history and the current view of each kind, per collection, and the lists and
    edges read from the current view."""

    name: str = ""

    @abc.abstractmethod
    async def get_current(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        """The newest stored version of each id in the current view, keyed by id.

        Ids that do not exist are absent from the result; an empty ``ids`` returns ``{}``. Inactive
        (soft-deleted) documents are returned too: filtering is the caller's business.
        """

    @abc.abstractmethod
    async def get_active_types(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The types of each id whose current document is active, keyed by id: its TYPE_FIELD, then (entities)
        its ADDITIONAL_TYPES_FIELD names in their stored order.

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

    async def get_versions(self, kind: str, collection_id: str, document_id: str) -> list[Document]:
        """Every version of one id from the history, oldest first; ``[]`` when the id never existed. One page of
        ``get_version_page`` as long as any history."""
        return (await self.get_version_page(kind, collection_id, document_id, None, EVERY_VERSION)).versions

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
        older (``Storage.publish``: its change is recorded if it was not), and return those; the others are left
        alone. One read, and when something is behind one record of changes and one write."""
        if not newest:
            return []
        current = await self.get_current(kind, collection_id, [document["id"] for document in newest])
        held = {document_id: version_of(kind, document) for document_id, document in current.items()}
        behind = newer_than_held(kind, held, newest)
        if behind:
            await self.publish(kind, collection_id, behind)  # Storage's: documents and the change log together
        return behind

    async def roll_forward(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        """Finish the claimed but unpublished versions of ``ids``: where the current view is absent or behind
        the history, the history's newest version is published. Returns the newest version of each id found in
        the history, keyed by id (ids without history omitted), as ``get_latest_versions`` does."""
        latest = await self.get_latest_versions(kind, collection_id, ids)
        await self.publish_behind(kind, collection_id, list(latest.values()))
        return latest

    async def scan_history(self, kind: str, after: tuple[str, str, int] | None, limit: int) -> list[tuple[str, str, int]]:
        """The keys (collection, id, version) of the whole history of a kind, across collections, in that order
        (strings in code-point order), strictly after ``after``, at most ``limit`` (``limit <= 0``: none)."""
        if limit <= 0:
            return []
        return await self._scan_history(kind, after, limit)

    @abc.abstractmethod
    async def _scan_history(self, kind: str, after: tuple[str, str, int] | None, limit: int) -> list[tuple[str, str, int]]:
        """``scan_history``'s page, ``limit >= 1``."""

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

    # ---- paged reads: the interface's guard around a plugin's primitive (see the module's docstring) -----------

    async def list_current(self, kind: str, collection_id: str, query: DocumentQuery) -> list[Document]:
        """One page of the current view of a collection: the documents matching ``query``, in ``id`` order,
        after ``query.after_id``, at most ``query.limit``. An empty or unknown collection gives ``[]``."""
        if query.limit <= 0 or query.matches_nothing(kind):
            return []
        return await self._list_current(kind, collection_id, query)

    @abc.abstractmethod
    async def _list_current(self, kind: str, collection_id: str, query: DocumentQuery) -> list[Document]:
        """``list_current``'s page, for a query that can match and ``query.limit >= 1``."""

    async def count_current(self, kind: str, collection_id: str, query: DocumentQuery) -> int:
        """How many current documents match ``query``'s filters; ``after_id`` and ``limit`` are ignored."""
        if query.matches_nothing(kind):
            return 0
        return await self._count_current(kind, collection_id, replace(query, after_id=None))

    @abc.abstractmethod
    async def _count_current(self, kind: str, collection_id: str, query: DocumentQuery) -> int:
        """``count_current``'s count, for a query that can match and has no ``after_id``."""

    async def find_edges(self, query: EdgeQuery) -> list[Document]:
        """Current relationships touching one entity from any collection, in (collection, id) order (see
        EdgeQuery). Each document's ``sourceERCollectionId`` tells the collection it lives in."""
        if (query.limit is not None and query.limit <= 0) or query.matches_nothing():
            return []
        return await self._find_edges(query)

    @abc.abstractmethod
    async def _find_edges(self, query: EdgeQuery) -> list[Document]:
        """``find_edges``'s page, for a query that can match and a ``query.limit`` of None or at least 1."""

    async def count_edges(self, query: EdgeQuery) -> dict[str, int]:
        """How many relationships match ``query``, per collection they live in (collections with none are
        absent); ``after`` and ``limit`` are ignored. One call tells both the total and where they live."""
        if query.matches_nothing():
            return {}
        return await self._count_edges(query)

    @abc.abstractmethod
    async def _count_edges(self, query: EdgeQuery) -> dict[str, int]:
        """``count_edges``'s counts, for a query that can match."""

    async def find_frontier_edges(self, query: FrontierQuery) -> list[Document]:
        """Current relationships touching any entity of ``query.entities`` (see FrontierQuery), from any
        collection, in (collection, id) order, each once, at most ``query.limit``: one hop of a traversal for the
        whole frontier in one call. An empty frontier, or neither side followed, gives ``[]``; unknown entities
        and collections contribute nothing."""
        if (query.limit is not None and query.limit <= 0) or query.matches_nothing():
            return []
        return await self._find_frontier_edges(query)

    @abc.abstractmethod
    async def _find_frontier_edges(self, query: FrontierQuery) -> list[Document]:
        """``find_frontier_edges``'s page, for a query that can match and a ``query.limit`` of None or at least 1."""

    @abc.abstractmethod
    async def get_current_across(self, kind: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Document]:
        """The current document of each (collection, id) of ``keys``, across collections, in one call, keyed
        by (collection, id). Absent keys are left out; inactive documents are returned too (as ``get_current``);
        an empty ``keys`` gives ``{}``."""

    @abc.abstractmethod
    async def count_by_type(self, kind: str, collection_id: str) -> dict[str, int]:
        """How many active current documents of a collection there are per stored type name (TYPE_FIELD);
        ``{}`` for an empty or unknown collection."""

    # ---- versioned documents written by one transaction -----------------------------------------------------

    @abc.abstractmethod
    async def find_applied(
        self, kind: str, collection_id: str, ids: Iterable[str], transaction_id: str
    ) -> dict[str, Document]:
        """For each id, the history version written by ``transaction_id`` (``sysData.sysTransactionId``).

        Ids this transaction never wrote are absent. Lets a re-applied job chunk skip what it already did.
        """

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
