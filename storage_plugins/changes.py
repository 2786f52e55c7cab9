"""The change log of a collection: every change, numbered by a per-collection sequence, read back in order.

A *change* is a version of an entity or relationship being published (written, deactivated) or a grant being
given or taken. Each gets a *sequence number*, strictly increasing per collection, assigned once and never
reused, also with several service processes on one database. The rules, written once here for every plugin:

- **Claiming.** A batch of changes claims a range of numbers with one call (``_advance_counter``: an atomic
  ``$inc`` where the backend has one) and stores its records with one insert (``_insert_changes``). The number
  is unique in the store (a unique key), so a number handed out twice by a backend without atomic updates
  (FerretDB 1.x) is caught at the insert: the loser claims a new range. One call and one insert per batch,
  whatever its size; more only when a race was lost.
- **Once per version.** The record of a version is keyed by (kind, id, version), also unique: when a version is
  published twice (a writer and another that rolls the same claimed version forward), only one record is kept,
  and the number the second one claimed is filled with a *void* record that readers skip.
- **Recorded before published.** The write path records a version's change before it publishes the version
  to the current view (``Storage.publish``). A version readers can see therefore always has its change
  recorded, and the change of version N+1 of an id comes after that of version N (N+1 is built on N once N is
  visible). A writer that dies between claiming a version and recording its change leaves the version
  claimed but unpublished; whoever rolls it forward (see storage_plugins/base.py) records the change then.
- **No gaps in what is read.** Numbers are claimed before their records land, so for a moment a reader may
  see N+2 while N+1 is still on its way. ``read_changes`` returns only the unbroken run after the position
  asked for, so a consumer that remembers the last number it saw never skips one. A number whose record never
  lands (its writer died between the claim and the insert) is filled with a void record by the first reader
  that finds the gap older than ``change_gap_grace_seconds``; if that writer was only slow, its insert then
  meets the void, and it claims a new number: the change is never lost, only numbered later.
- **Retention.** ``trim_changes`` deletes the records up to a number and remembers it (``first_sequence``): the
  feed is whole only after it. The newest record is never deleted, so numbers are never handed out again.
"""

from __future__ import annotations

import abc
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Sequence

from storage_plugins.common import Document, Rows, StorageError
from storage_plugins.documents import VERSION_FIELD
CHANGE_KINDS = {"entities": "entity", "relationships": "relationship"}
VOID = "void"
MAX_CLAIM_ROUNDS = 50  # ranges one batch may claim when it keeps losing races: then the storage error (503)
READ_ROUNDS = 8  # reads of one read_changes call that skip void records or fill stale gaps before answering

ChangeListener = Callable[[str, int], None]


class ChangeLog(abc.ABC):
    """The change log interface: the public methods hold the rules (the module's docstring); a plugin supplies
    the primitives (the abstract methods whose names start with ``_``)."""

    # how long a reader waits for a claimed number's record before filling it with a void record (seconds)
    change_gap_grace_seconds: float = 10.0

    # ---- primitives ------------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _advance_counter(self, collection_id: str, count: int, at_least: int) -> int:
        """Raise the collection's counter to at least ``at_least``, then add ``count`` to it, and return the new
        value: the caller claims the ``count`` numbers up to it. Starts from 0 for a new collection."""

    @abc.abstractmethod
    async def _counter(self, collection_id: str) -> int:
        """The collection's counter (0 when it has none): the highest number claimed so far."""

    @abc.abstractmethod
    async def _insert_changes(self, collection_id: str, records: Sequence[Document]) -> list[int]:
        """Insert change records (each with ``sequence`` and ``key``, both unique within the collection);
        return the indexes of those not written because one of the two was taken. The others are written."""

    @abc.abstractmethod
    async def _taken_sequences(self, collection_id: str, sequences: Iterable[int]) -> set[int]:
        """Which of ``sequences`` have a record in the collection."""

    @abc.abstractmethod
    async def _change_records(self, collection_id: str, after: int, limit: int) -> list[Document]:
        """The records (voids included) numbered above ``after``, in order, at most ``limit``."""

    @abc.abstractmethod
    async def _trimmed_up_to(self, collection_id: str) -> int:
        """The highest number trimmed so far (0 when nothing was)."""

    @abc.abstractmethod
    async def _trim(self, collection_id: str, up_to: int) -> None:
        """Remember ``up_to`` as trimmed (never lowering what is remembered), then delete the records numbered
        up to it."""

    @abc.abstractmethod
    async def _newest_before(self, collection_id: str, moment: str) -> int:
        """The number of the latest record by ``time`` among those whose ``time`` is before ``moment`` (the
        highest number of them on a tie; 0 when none is)."""

    # ---- the interface -----------------------------------------------------------------------------------------

    def add_change_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(collection_id, sequence)`` after each batch of changes this process records: how a
        long poll in this process learns of a change without asking storage."""
        self.__dict__.setdefault("_change_listeners", []).append(listener)

    async def record_changes(self, collection_id: str, changes: Sequence[Document]) -> int:
        """Number and store ``changes`` (each with ``kind``, ``id``, ``version``, ``operation``, ``document``,
        ``time``); return the highest number given (the counter when ``changes`` is empty). A versioned change
        already recorded is not recorded again. Takes the changes over (numbers them in place). Raises
        StorageError when it keeps losing races."""
        if not changes:
            return await self._counter(collection_id)
        pending: Sequence[Document] = changes if isinstance(changes, VersionChanges) else list(changes)
        taken, top = 0, 0
        for _ in range(MAX_CLAIM_ROUNDS):
            top = await self._advance_counter(collection_id, len(pending), taken)
            records = _numbered(pending, top - len(pending) + 1)
            failed = await self._insert_changes(collection_id, records)
            if failed:
                pending, taken = await self._settle_failures(collection_id, [records[index] for index in failed])
            if not failed or not pending:
                self._tell_listeners(collection_id, top)
                return top
        raise StorageError(f"recording changes of ERCollection {collection_id} lost {MAX_CLAIM_ROUNDS} races in a row")

    async def _settle_failures(self, collection_id: str, failed: list[Document]) -> tuple[list[Document], int]:
        """After an insert that lost some records: a record whose number someone else holds is claimed again
        (returned, with the highest such number); one whose number is free lost on its version key (already
        recorded), and its number is filled with a void record so that readers do not wait for it."""
        taken = await self._taken_sequences(collection_id, [record["sequence"] for record in failed])
        voids = [_void(record["sequence"]) for record in failed if record["sequence"] not in taken]
        if voids:
            await self._insert_changes(collection_id, voids)  # a number filled meanwhile (a reader's void) is fine
        again = [_change_of(record) for record in failed if record["sequence"] in taken]
        return again, max(taken, default=0)

    def _tell_listeners(self, collection_id: str, sequence: int) -> None:
        for listener in self.__dict__.get("_change_listeners", ()):
            listener(collection_id, sequence)

    async def read_changes(self, collection_id: str, after: int, limit: int) -> list[Document]:
        """The changes numbered above ``after``, in order, at most ``limit``: only the unbroken run of numbers
        after ``after`` (void records skipped), so that a number below one returned never appears later. Each
        change: ``sequence``, ``kind`` (entity, relationship, grant), ``id``, ``version`` (None for a grant),
        ``operation``, ``document``, ``time``. Positions at or below ``first_sequence`` read what is left."""
        changes: list[Document] = []
        position = max(after, 0)
        for _ in range(READ_ROUNDS):
            asked = limit - len(changes) + 1
            records = await self._change_records(collection_id, position, asked)
            run = _unbroken(records, position)
            changes.extend(_public(record) for record in run if record["kind"] != VOID)
            if run:
                position = run[-1]["sequence"]
            if len(changes) >= limit or (len(run) == len(records) < asked):  # a full page, or the end
                return changes[:limit]
            if len(run) < len(records):
                passed = await self._past_gap(collection_id, position, records[len(run)])
                if passed is None:
                    return changes
                position = passed
        return changes

    async def _past_gap(self, collection_id: str, position: int, beyond: Document) -> int | None:
        """Where to read on from, when the record after ``position`` is missing and ``beyond`` is the next one
        there is: past the trimmed numbers when the gap is a trim's; from ``position`` again once the gap is
        filled with void records, when ``beyond`` is older than the grace period (the writer of the missing
        numbers is taken for dead); None (stop here) while the gap is fresh."""
        trimmed = await self._trimmed_up_to(collection_id)
        if position < trimmed:
            return trimmed
        grace = timedelta(seconds=self.change_gap_grace_seconds)
        if datetime.fromisoformat(beyond["time"].replace("Z", "+00:00")) > datetime.now(timezone.utc) - grace:
            return None
        await self._insert_changes(collection_id, [_void(number) for number in range(position + 1, beyond["sequence"])])
        return position

    async def latest_sequence(self, collection_id: str) -> int:
        """The highest number claimed in the collection (0 for none): what ``read_changes`` will reach once the
        changes still on their way have landed."""
        return await self._counter(collection_id)

    async def first_sequence(self, collection_id: str) -> int:
        """The feed is whole after this number: the records up to it were trimmed (0 when nothing was)."""
        return await self._trimmed_up_to(collection_id)

    async def trim_changes(self, collection_id: str, before: datetime) -> int:
        """Delete the records older than ``before``, keeping the newest record whatever its age, and return
        the number the feed is whole after (``first_sequence``)."""
        newest_old = min(await self._newest_before(collection_id, utc_time(before)), await self._counter(collection_id) - 1)
        if newest_old > await self._trimmed_up_to(collection_id):
            await self._trim(collection_id, newest_old)
        return await self._trimmed_up_to(collection_id)


class Publishes:
    """``publish``, the one way the write path makes versions visible: their changes first, then the current
    view (the module's docstring says why in that order). For a plugin (``Storage``) and a view of one batch."""

    async def publish(self, kind: str, collection_id: str, documents: Sequence[Document]) -> int:
        """Record the changes of ``documents`` (versions of ``kind`` claimed in the history) and move the current
        view forward to them; return the collection's sequence number after the changes (0 for no documents)."""
        if not documents:
            return 0
        sequence = await self.record_changes(collection_id, versioned_changes(kind, documents))
        await self.put_current(kind, collection_id, documents)
        return sequence


class VersionChanges(Rows[Document]):
    """The changes of publishing versions of one kind (``versioned_changes``), a column per field: a plugin that
    keeps change records as columns (the memory plugin) stores them without a document per change. As a sequence,
    each change is a new document (``kind``, ``id``, ``version``, ``operation``, ``document``, ``time``)."""

    __slots__ = ("kind", "ids", "versions", "operations", "documents", "time")

    def __init__(self, kind: str, ids: list[str], versions: list[int], operations: list[str],
                 documents: Sequence[Document], time: str) -> None:
        self.kind, self.ids, self.versions, self.operations = kind, ids, versions, operations
        self.documents, self.time = documents, time

    def __len__(self) -> int:
        return len(self.ids)

    def _row(self, index: int) -> Document:
        return {"kind": self.kind, "id": self.ids[index], "version": self.versions[index],
                "operation": self.operations[index], "document": self.documents[index], "time": self.time}


class NumberedChanges(Rows[Document]):
    """``VersionChanges`` as records numbered from ``first`` (``sequences``), with their unique ``keys``: the
    columns stay as they are; as a sequence, each record is a new document (the change's fields, then
    ``sequence`` and ``key``)."""

    __slots__ = ("changes", "sequences", "keys")

    def __init__(self, changes: VersionChanges, first: int) -> None:
        self.changes = changes
        self.sequences = range(first, first + len(changes))
        self.keys = [version_key(changes.kind, document_id, version)
                     for document_id, version in zip(changes.ids, changes.versions)]

    def __len__(self) -> int:
        return len(self.keys)

    def _row(self, index: int) -> Document:
        return {**self.changes[index], "sequence": self.sequences[index], "key": self.keys[index]}


def versioned_changes(kind: str, documents: Sequence[Document]) -> VersionChanges:
    """The changes of publishing ``documents`` (versions of ``kind``): created (version 1), deactivated
    (``isActive`` false) or updated. Derived from the document alone, so whoever publishes it (its writer, or
    a roll forward) records the same change."""
    version_field = VERSION_FIELD[kind]
    versions = [document["sysData"][version_field] for document in documents]
    operations = ["deactivated" if document.get("isActive") is False else "created" if version == 1 else "updated"
                  for document, version in zip(documents, versions)]
    return VersionChanges(CHANGE_KINDS[kind], [document["id"] for document in documents], versions, operations,
                          documents, utc_time(datetime.now(timezone.utc)))


def grant_change(principal: str, record: Document) -> Document:
    """The change of giving (some access) or taking (none) ``principal``'s grant on a collection."""
    return {"kind": "grant", "id": principal, "version": None, "operation": "granted" if record["access"] else "revoked",
            "document": record, "time": utc_time(datetime.now(timezone.utc))}


def _numbered(changes: Sequence[Document], first: int) -> Sequence[Document]:
    """The changes as records numbered from ``first``: each gets its ``sequence`` and unique ``key`` in place (the
    changes were handed over: see Ownership in storage_plugins/base.py); columns stay columns."""
    if isinstance(changes, VersionChanges):
        return NumberedChanges(changes, first)
    for sequence, change in enumerate(changes, first):
        change["sequence"] = sequence
        if change["version"] is None:  # a grant: each is its own change
            change["key"] = f"{change['kind']}/{change['id']}/{uuid.uuid4()}"
        else:
            change["key"] = version_key(change["kind"], change["id"], change["version"])
    return changes


def version_key(kind: str, document_id: str, version: int) -> str:
    """The unique key of the change that one version made: recorded once, whoever publishes it."""
    return f"{kind}/{document_id}/{version}"


def _void(sequence: int) -> Document:
    return {"sequence": sequence, "key": f"{VOID}/{sequence}", "kind": VOID, "id": "", "version": None,
            "operation": VOID, "document": None, "time": utc_time(datetime.now(timezone.utc))}


def utc_time(moment: datetime) -> str:
    """The ``time`` of a change: ISO 8601 in UTC with microseconds, so that strings sort as the moments do."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _change_of(record: Document) -> Document:
    return {name: value for name, value in record.items() if name not in ("sequence", "key")}


def _public(record: Document) -> Document:
    return {name: value for name, value in record.items() if name != "key"}


def _unbroken(records: list[Document], after: int) -> list[Document]:
    """The leading records whose numbers follow ``after`` one by one."""
    run = []
    for record in records:
        if record["sequence"] != after + len(run) + 1:
            break
        run.append(record)
    return run
