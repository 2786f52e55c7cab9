"""MongoDB storage through PyMongo's asyncio API: one database command per interface call, whatever the batch.

Only loaded when config selects ``storage = "mongodb"``, so a memory-only install never imports pymongo.

Layout, in the configured database (``ercollectionid`` leads every index of per-collection data, so it can be
the shard key):

- ``entities``, ``relationships``: the current view, one document per (ercollectionid, id);
- ``entities_history``, ``relationships_history``: one document per (ercollectionid, id, version);
- ``logs``: ACL records, wrapped as ``{"record": ...}``; ``recordKind`` (``collection`` or ``grant``) tells them
  apart and is set here, never taken from a caller's document;
- ``status_segments``: status records, up to 100 of one transaction per document (storage_plugins/mongodb_status.py);
- ``jobs``: the chunks of async jobs, one queue for every collection;
- ``changes``: the change log (storage_plugins/changes.py), one record per (ercollectionid, sequence), unique also
  by (ercollectionid, key); ``change_marks``: per collection its counter (``_id`` ``counter:<collection>``) and
  how far it is trimmed (``trimmed:<collection>``), two documents so that neither update can undo the other.

Every method is one database command whatever its batch size, except where the server's dialect
(``storage_plugins.mongodb_dialect``: FerretDB 1.x, the test server) calls for a workaround; each is named where
it is made, and listed in docs/OPERATIONS.md.

Callers get back exactly the documents they stored: the server-side fields (``_id``, ``ercollectionid``,
``recordKind``) are removed on read, and a caller's own field of one of those names is kept aside under
``erapi-shadowed`` (a name the request schemas cannot produce) rather than overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import structlog

try:
    import pymongo
    from bson.errors import BSONError
    from pymongo import (
        ASCENDING,
        DESCENDING,
        AsyncMongoClient,
        IndexModel,
        ReplaceOne,
        ReturnDocument,
        UpdateOne,
        WriteConcern,
    )
    from pymongo import errors as mongo_errors
except ImportError as missing:  # told by create_storage as a configuration error, with this text
    raise ImportError(f"PyMongo is not installed ({missing}); install the mongodb extra: "
                      f"pip install 'erapi[mongodb]'") from missing

from erapi.errors import ConfigurationError
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
    StorageError,
    VersionPage,
    WritePathView,
    newer_than_held,
    version_of,
)
from storage_plugins.common import query_text
from storage_plugins.jobs import NEW_CHUNK, UNLEASED, leased
from storage_plugins.mongodb_dialect import AUTO, MONGODB, MongoDialect, choose_dialect, dialect_named
from storage_plugins.mongodb_status import MongoStatusRecords, status_indexes
from storage_plugins.mongodb_subscriptions import SUBSCRIPTION_INDEXES, MongoSubscriptions

LOGS = "logs"
JOBS = "jobs"
CHANGES = "changes"
CHANGE_MARKS = "change_marks"
IDEMPOTENCY = "idempotency"  # one document per key, _id the record's id: the unique _id index arbitrates claims
REGISTRATION, GRANT = "collection", "grant"
OLD_STATUS = "status"  # recordKind of a status record in logs, before they moved to status segments
# the order of logs' (ercollectionid, recordKind, receivedTimestamp, id) index: old records move a transaction at a time
OLD_STATUS_ORDER = [("ercollectionid", 1), ("recordKind", 1), ("receivedTimestamp", 1), ("id", 1)]
MIGRATION_PAGE = 1000
SERVER_FIELDS = ("_id", "ercollectionid", "recordKind")
SHADOW_FIELD = "erapi-shadowed"
DUPLICATE_KEY = 11000
# A dialect without atomic updates (FerretDB 1.x) runs an update (update, findAndModify, delete) as a read, then
# a write of the whole document by _id, outside any transaction: two concurrent updates of one document can
# lose one (the current view moving backwards, two workers claiming one chunk). On such a server, this process
# makes one update at a time (each method that updates holds this lock for all its commands), per event loop.
_update_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
# Most type names in one list query (see _split_types): MongoDB's internalQueryMaxScansToExplode
TYPES_PER_QUERY = 200
# Keys of ACL records in the logs' unique (ercollectionid, id) index; status record ids are UUIDs.
REGISTRATION_KEY = "acl:collection"
GRANT_KEY_PREFIX = "acl:grant:"

_URI_PASSWORD = re.compile(r"^([^:/]+://[^:@/]*):.*@")
_URI_SECRET_OPTION = re.compile(r"(?i)([?&][^=&]*(?:password|secret|token|authmechanismproperties)[^=&]*=)[^&]*")


def redact_uri(uri: str) -> str:
    """The URI with its password (and any password-like option) replaced by ``***``, safe to log."""
    return _URI_SECRET_OPTION.sub(r"\1***", _URI_PASSWORD.sub(r"\1:***@", uri))


def _timeouts(uri: str, timeout_ms: int, operation_timeout_ms: int) -> dict[str, int]:
    """Client timeouts, except those the URI sets itself.

    Every operation as a whole (server selection, retries, the server's work and its wait for the write
    concern) is bounded by ``operation_timeout_ms``: PyMongo's client-side operation timeout (``timeoutMS``),
    which also sends the remaining time as ``maxTimeMS`` so that the server stops too. Connecting, and server
    selection where no operation timeout applies, are bounded by ``timeout_ms`` (see ``_fail_fast``).
    """
    given = {option.split("=", 1)[0].lower() for option in urlsplit(uri).query.split("&") if option}
    timeouts = {
        "serverSelectionTimeoutMS": timeout_ms,
        "connectTimeoutMS": timeout_ms,
        "timeoutMS": operation_timeout_ms,
    }
    return {name: value for name, value in timeouts.items() if name.lower() not in given}


def _write_concern(w: str, journal: bool, wtimeout_ms: int) -> WriteConcern:
    """The write concern, with ``wtimeout``: how long the primary waits for the members to acknowledge.

    PyMongo leaves ``wtimeout`` out of the commands it sends while a client-side operation timeout applies (the
    ``maxTimeMS`` it sends bounds that wait instead); it is sent when ``timeoutMS=0`` in the URI turns that off.
    """
    if w == "majority":
        return WriteConcern(w="majority", j=journal, wtimeout=wtimeout_ms)
    if w.isdigit() and int(w) >= 1:
        return WriteConcern(w=int(w), j=journal, wtimeout=wtimeout_ms)
    raise ConfigurationError(f"config key mongodb.write_concern must be 'majority' or a number >= 1, got {w!r}")


@contextlib.contextmanager
def _driver_errors(action: str) -> Iterator[None]:
    """Turn every driver failure into the interface's StorageError (a 503 for the client).

    That includes a document BSON cannot encode (``bson.errors.BSONError``: InvalidDocument, DocumentTooLarge)
    and an integer beyond BSON's 64 bits (``OverflowError`` from the encoder): the service validates client data
    before it gets here, so what remains is the server's limit, not the client's error, and nothing is written
    (the encoder fails before the command is sent).
    """
    try:
        yield
    except mongo_errors.PyMongoError as error:
        raise StorageError(f"MongoDB {action} failed: {error}") from error
    except (BSONError, OverflowError) as error:
        raise StorageError(f"MongoDB {action} failed: a document cannot be encoded as BSON: {error}") from error


def _texts(values: Iterable[str], what: str) -> list[str]:
    return list(dict.fromkeys(query_text(value, what) for value in values))


def _version(kind: str, document: Document) -> int:
    version = document["sysData"][VERSION_FIELD[kind]]
    if not isinstance(version, int) or isinstance(version, bool):
        raise TypeError(f"sysData.{VERSION_FIELD[kind]} must be an integer, got {version!r}")
    return version


def _stored(document: Document, collection_id: str, **server_fields: Any) -> Document:
    stored = dict(document)
    shadowed = {name: stored.pop(name) for name in SERVER_FIELDS if name in stored}
    if shadowed:
        stored[SHADOW_FIELD] = shadowed
    stored["ercollectionid"] = collection_id
    stored.update(server_fields)
    return stored


def _returned(stored: Document) -> Document:
    for name in SERVER_FIELDS:
        stored.pop(name, None)
    stored.update(stored.pop(SHADOW_FIELD, {}))
    return stored


@dataclass(frozen=True)
class MongoSettings:
    """The ``[mongodb]`` config table (docs/OPERATIONS.md): the keyword arguments of MongoStorage."""

    uri: str = "mongodb://127.0.0.1:27017"
    database: str = "erapi"
    write_concern: str = "majority"  # "majority" or a number of nodes as a string, e.g. "1"
    journal: bool = True
    timeout_ms: int = 5000
    operation_timeout_ms: int = 30000  # one database operation as a whole, retries included (PyMongo timeoutMS)
    # Server quirks the plugin works around (storage_plugins/mongodb_dialect.py): "auto" picks by server version
    dialect: str = "auto"

    def __post_init__(self) -> None:
        for key in ("timeout_ms", "operation_timeout_ms"):
            if getattr(self, key) <= 0:
                raise ConfigurationError(f"config key mongodb.{key} must be positive, got {getattr(self, key)}")
        if self.dialect != AUTO:
            dialect_named(self.dialect)  # refuses an unknown name, listing the valid ones


class MongoStorage(MongoStatusRecords, MongoSubscriptions, Storage):
    name = "mongodb"
    settings = MongoSettings
    shared_across_processes = True

    def __init__(
        self,
        *,
        uri: str,
        database: str,
        write_concern: str = "majority",
        journal: bool = True,
        timeout_ms: int = 5000,
        operation_timeout_ms: int = 30000,
        dialect: str | MongoDialect = AUTO,
    ) -> None:
        self._uri = uri
        self._database_name = database
        self._write_concern = _write_concern(write_concern, journal, operation_timeout_ms)
        self._timeouts = _timeouts(uri, timeout_ms, operation_timeout_ms)
        if isinstance(dialect, str) and dialect != AUTO:
            dialect_named(dialect)  # refuse an unknown name before connecting
        self._configured_dialect = dialect
        self._client: AsyncMongoClient | None = None
        self._db: Any = None
        # What the server lacks of MongoDB: chosen in open() from the server's version, or as configured
        self.dialect: MongoDialect = MONGODB
        self._marks_made: set[str] = set()  # change marks known to exist (see _update_mark)
        self._atomic_unavailable: str | None = "the MongoDB storage is not open"

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        structlog.get_logger().info(
            "storage.mongodb.open",
            uri=redact_uri(self._uri),
            database=self._database_name,
            write_concern=self._write_concern.document,
        )
        try:
            self._client = AsyncMongoClient(self._uri, appname="erapi", **self._timeouts)
            self._db = self._client.get_database(self._database_name, write_concern=self._write_concern)
        except (mongo_errors.ConfigurationError, mongo_errors.InvalidName) as error:
            await self.close()
            raise ConfigurationError(
                f"MongoDB settings are invalid (uri {redact_uri(self._uri)}, database {self._database_name!r}): "
                f"{error}"
            ) from error
        try:
            with _driver_errors("start-up"):
                with self._fail_fast():
                    build = await self._build_info()
                choice = choose_dialect(build, self._configured_dialect)
                self.dialect = choice.dialect
                log = structlog.get_logger().info if choice.dialect is MONGODB else structlog.get_logger().warning
                log("storage.mongodb.dialect", dialect=choice.dialect.name, reason=choice.reason)
                await self._check_indexes()
                self._atomic_unavailable = _transactions_unavailable(
                    self.dialect, await self._client.admin.command("hello"))
        except BaseException:
            await self.close()
            raise

    async def _build_info(self) -> Document:
        """The server's buildInfo; StorageError in one sentence when no server answers in time."""
        try:
            return await self._client.admin.command("buildInfo")
        except mongo_errors.ServerSelectionTimeoutError as error:
            uri = redact_uri(self._uri)
            structlog.get_logger().error("storage.mongodb.unreachable", uri=uri, error=str(error))
            seconds = self._client.options.server_selection_timeout
            raise StorageError(f"no MongoDB server answered at {uri} within {seconds:g} s (server selection timeout: "
                               f"mongodb.timeout_ms, or serverSelectionTimeoutMS in the URI)") from error

    async def _missing_indexes(self) -> dict[str, list[IndexModel]]:
        """The indexes of ``_indexes()`` that the database lacks, by collection (one listIndexes each)."""
        present: dict[str, set[str]] = {}
        missing: dict[str, list[IndexModel]] = {}
        for collection, index in _indexes():
            if collection not in present:
                present[collection] = {existing["name"] async for existing in await self._db[collection].list_indexes()}
            if index.document["name"] not in present[collection]:
                missing.setdefault(collection, []).append(index)
        return missing

    async def _check_indexes(self) -> None:
        """Build the missing indexes of empty collections (a new database: instant); on a collection that holds
        data, leave the build to ``erapi storage init-indexes``, which may take long and must not hold up or
        time out a start: refuse to start without a unique index (writes rely on them), warn about the others
        (reads work, more slowly)."""
        for collection, indexes in (await self._missing_indexes()).items():
            if await self._db[collection].find_one({}, {"_id": True}) is None:
                await self._create(collection, indexes)
                continue
            names = [index.document["name"] for index in indexes]
            if any(index.document.get("unique") for index in indexes):
                raise StorageError(
                    f"MongoDB collection {self._database_name}.{collection} holds data but lacks the unique "
                    f"index(es) {', '.join(names)}: run `erapi storage init-indexes` first (docs/OPERATIONS.md)"
                )
            structlog.get_logger().warning(
                "storage.mongodb.indexes_missing", collection=collection, indexes=names,
                note="queries work, more slowly; run `erapi storage init-indexes` (docs/OPERATIONS.md)",
            )

    async def _create(self, collection: str, indexes: list[IndexModel]) -> None:
        # One index per command: FerretDB 1.24 drops the connection (a panic in validateIndexesForCreation) when
        # one createIndexes names several indexes that already exist (another process may just have made them).
        for index in indexes:
            await self._db[collection].create_indexes([index])

    async def init_indexes(self) -> list[str]:
        """Build every missing index, however long it takes, then drop the indexes they supersede; what was done,
        one line each. For ``erapi storage init-indexes``: opens and closes its own connection."""
        report = []
        self._client = AsyncMongoClient(self._uri, appname="erapi-init-indexes", **self._timeouts)
        self._db = self._client.get_database(self._database_name, write_concern=self._write_concern)
        try:
            with _driver_errors("index build"), pymongo.timeout(None):
                for collection, indexes in (await self._missing_indexes()).items():
                    await self._create(collection, indexes)
                    report.extend(f"built {collection}.{index.document['name']}" for index in indexes)
                moved = await self._move_old_status_records()
                if moved:
                    report.append(f"moved {moved} status records from {LOGS} to status segments")
                for collection, names in SUPERSEDED_INDEXES.items():
                    present = {existing["name"] async for existing in await self._db[collection].list_indexes()}
                    for name in sorted(present.intersection(names)):
                        await self._db[collection].drop_index(name)
                        report.append(f"dropped {collection}.{name} (superseded)")
        finally:
            await self.close()
        return report or ["every index is present"]

    async def _move_old_status_records(self) -> int:
        """Status records that versions before 2026-11-29 kept one per document in ``logs`` (``recordKind``
        ``status``), moved into status segments so that the tracker URLs handed out before an upgrade still
        resolve. A page at a time, each inserted before it is deleted: a move cut short and run again finds the
        records it already inserted refused as duplicates, skips them, and deletes the old copies."""
        moved = 0
        while old := await self._db[LOGS].find({"recordKind": OLD_STATUS}).sort(OLD_STATUS_ORDER).limit(
                MIGRATION_PAGE).to_list():
            records = [{field: value for field, value in document.items() if field not in SERVER_FIELDS}
                       for document in old]
            with contextlib.suppress(DuplicateError):  # already moved by an earlier, interrupted run
                await self.insert_logs(records)
            await self._db[LOGS].delete_many({"_id": {"$in": [document["_id"] for document in old]}})
            moved += len(old)
        return moved

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            with _driver_errors("close"):
                await client.close()

    async def ping(self) -> None:
        if self._db is None:
            raise StorageError("MongoDB storage is not open")
        with _driver_errors("ping"):
            with self._fail_fast():  # readiness says at once that the server is down
                await self._db.command("ping")

    @contextlib.contextmanager
    def _operation(self, action: str) -> Iterator[None]:
        """One plugin call: driver errors become StorageError, and its time is bounded.

        By ``operation_timeout_ms`` (the client's) while the client knows a primary; when it knows none (the
        server is down, or was found down by the last call), by ``timeout_ms``, so that requests keep failing
        fast while it is down. PyMongo gives server selection all of an operation's timeout, so without this
        every request would wait ``operation_timeout_ms`` for a server that is not coming back.
        """
        with _driver_errors(action):
            if self._client is not None and not self._client.topology_description.has_writable_server():
                with self._fail_fast():
                    yield
            else:
                yield

    def _fail_fast(self) -> contextlib.AbstractContextManager:
        """The server selection timeout (``timeout_ms``, or serverSelectionTimeoutMS in the URI) for this block
        instead of ``operation_timeout_ms``: PyMongo gives server selection all of an operation's timeout."""
        return pymongo.timeout(self._client.options.server_selection_timeout)

    def _one_update_at_a_time(self) -> contextlib.AbstractAsyncContextManager:
        if self.dialect.atomic_updates:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        return _update_locks.setdefault(loop, asyncio.Lock())

    # ---- versioned documents -------------------------------------------------------------------------------

    async def get_current(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, Document]:
        wanted = _texts(ids, "id")
        if not wanted:
            return {}
        query = {"ercollectionid": query_text(collection_id, "collection id"), "id": {"$in": wanted}}
        with self._operation(f"read of {kind}"):
            found = await self._db[kind].find(query).to_list()
        return {document["id"]: _returned(document) for document in found}

    async def get_active_types(self, kind: str, collection_id: str, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        wanted = _texts(ids, "id")
        if not wanted:
            return {}
        type_field = TYPE_FIELD[kind]
        # isActive is checked here, not in the filter: with it, SecantusDB scans the whole collection instead of
        # using the unique (collection, id) index (190 ids among 1,700 entities: 1.17 s against 0.08 s)
        query = {"ercollectionid": query_text(collection_id, "collection id"), "id": {"$in": wanted}}
        fields = (type_field, ADDITIONAL_TYPES_FIELD) if kind == "entities" else (type_field,)
        projection = {"_id": False, "id": True, "isActive": True, **dict.fromkeys(fields, True)}
        with self._operation(f"read of {kind}"):
            found = await self._db[kind].find(query, projection).to_list()
        return {document["id"]: (document.get(type_field), *document.get(ADDITIONAL_TYPES_FIELD, ()))
                for document in found if document.get("isActive") is not False}

    async def get_latest_versions(
        self, kind: str, collection_id: str, ids: Iterable[str]
    ) -> dict[str, Document]:
        wanted = _texts(ids, "id")
        if not wanted:
            return {}
        version = f"sysData.{VERSION_FIELD[kind]}"
        history = self._db[f"{kind}_history"]
        query = {"ercollectionid": query_text(collection_id, "collection id"), "id": {"$in": wanted}}
        with self._operation(f"read of {kind} history"):
            if self.dialect.group_first:
                # Walks the unique (ercollectionid, id, version) index backwards and keeps each id's first.
                pipeline = [
                    {"$match": query},
                    {"$sort": {"id": DESCENDING, version: DESCENDING}},
                    {"$group": {"_id": "$id", "latest": {"$first": "$$ROOT"}}},
                ]
                cursor = await history.aggregate(pipeline)
                return {group["_id"]: _returned(group["latest"]) for group in await cursor.to_list()}
            # Without $first (dialect ferretdb1): every version of the ids, keeping the highest of each.
            latest: dict[str, Document] = {}
            async for document in history.find(query).sort(version, ASCENDING):
                latest[document["id"]] = document
        return {doc_id: _returned(document) for doc_id, document in latest.items()}

    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        result = ClaimResult()
        if not documents:
            return result
        collection_id = query_text(collection_id, "collection id")
        for document in documents:
            query_text(document["id"], "id")
            _version(kind, document)
        batch = [_stored(document, collection_id) for document in documents]
        with self._operation(f"claim of {kind} versions"):
            conflicted = await self._insert_unordered(f"{kind}_history", batch, f"claim of {kind} versions")
        for index, document in enumerate(documents):
            (result.conflicted if index in conflicted else result.claimed).append(document["id"])
        return result

    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        if not documents:
            return
        collection_id = query_text(collection_id, "collection id")
        for document in documents:
            query_text(document["id"], "id")
            _version(kind, document)
        with self._operation(f"write of current {kind}"):
            async with self._one_update_at_a_time():
                if self.dialect.atomic_updates:
                    await self._put_current_conditionally(kind, collection_id, documents)
                else:
                    await self._put_current_by_id(kind, collection_id, documents)

    async def _put_current_conditionally(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        """One unordered batch of upserts: each document replaces its id's if the stored version is lower."""
        statements = [self._conditional_put(kind, collection_id, document) for document in documents]
        lost = await self._upsert(kind, statements)
        if lost:
            # A duplicate key means the filter matched nothing although the id exists: a concurrent writer
            # inserted it between our match and our insert, or (a filter comparing versions) a newer or equal
            # version is stored. Once more, now that the id exists, tells them apart; a duplicate the second
            # time is a newer or equal version, and versions never go back.
            await self._upsert(kind, lost)

    def _conditional_put(self, kind: str, collection_id: str, document: Document) -> Document:
        """The upsert statement that stores ``document`` unless its id holds an equal or newer version.

        With pipeline updates (MongoDB): matched on the unique key alone, a point lookup whatever else the index
        holds, and the version compared by the update itself (``$literal``: the document's strings are data,
        never field paths). Otherwise (FerretDB 1.x has no pipeline updates) the version is compared by the
        filter.
        """
        version = f"sysData.{VERSION_FIELD[kind]}"
        key = {"ercollectionid": collection_id, "id": document["id"]}
        stored = _stored(document, collection_id)
        if not self.dialect.pipeline_updates:
            return {"q": {**key, version: {"$lt": _version(kind, document)}}, "u": stored, "upsert": True}
        newer = {"$lt": [f"${version}", _version(kind, document)]}  # a missing version (a new id) is lower
        replace = {"$mergeObjects": [{"_id": "$_id"}, {"$literal": stored}]}
        return {"q": key, "u": [{"$replaceWith": {"$cond": [newer, replace, "$$ROOT"]}}], "upsert": True}

    async def _put_current_by_id(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        """Without atomic updates (dialect ferretdb1): read the stored versions once, decide here, then insert new
        ids and replace by ``_id``.

        FerretDB's SQLite backend uses no index for a filter other than exactly ``{_id: value}``, so each
        conditional statement of the other path scans the whole collection: 13 s for 100 new documents of a
        2,000-document collection, against 0.3 s here. The process-wide update lock (held by the caller) makes
        this read-decide-write atomic within the process; across processes FerretDB stays racy (test server).
        """
        query = {"ercollectionid": collection_id, "id": {"$in": list(dict.fromkeys(doc["id"] for doc in documents))}}
        cursor = self._db[kind].find(query, {"_id": True, "id": True, "sysData": True})
        stored = {document["id"]: document for document in await cursor.to_list()}
        held = {doc_id: version_of(kind, document) for doc_id, document in stored.items()}
        forward = newer_than_held(kind, held, documents)
        fresh = [document for document in forward if document["id"] not in stored]
        replacements = [{"q": {"_id": stored[document["id"]]["_id"]}, "u": _stored(document, collection_id)}
                        for document in forward if document["id"] in stored]
        if fresh:
            batch = [_stored(document, collection_id) for document in fresh]
            raced = await self._insert_unordered(kind, batch, f"write of current {kind}")
            if raced:  # another process inserted some of these ids meanwhile: settle them the conditional way
                await self._put_current_conditionally(kind, collection_id, [fresh[index] for index in sorted(raced)])
        for reply, _ in await self._update(kind, replacements):
            if reply.get("writeErrors"):
                raise StorageError(f"MongoDB write of current {kind} failed: {reply['writeErrors'][0]}")

    async def _upsert(self, collection: str, statements: list[Document]) -> list[Document]:
        """Run upsert statements unordered; return those that failed on a duplicate key.

        FerretDB 1.x ignores ``ordered: false`` on ``update`` (FerretDB#2612): it stops at the first write error
        and then leaves the counts out of its reply. A reply that does not account for every statement is
        detected here, and its statements are replayed one by one (each is idempotent). MongoDB accounts for
        every statement of an unordered batch, so it never takes that path.
        """
        lost = []
        for reply, batch in await self._update(collection, statements):
            errors = reply.get("writeErrors", [])
            if len(batch) > 1 and reply.get("n", 0) + len(errors) < len(batch):
                for statement in batch:
                    lost.extend(await self._upsert(collection, [statement]))
            else:
                lost.extend(batch[index] for index in _duplicates(reply, f"write of {collection}"))
        return lost

    async def _update(self, collection: str, statements: list[Document]) -> list[tuple[Document, list[Document]]]:
        """Run ``update`` statements unordered; return each reply (``n``, ``nModified``, ``writeErrors``) with its
        statements.

        Through ``bulk_write`` where the dialect allows: single-document writes, so PyMongo retries the batch
        once across a failover (retryable writes), and splits it to the server's batch and message limits.
        Otherwise (FerretDB 1.x, whose reply to a batch with a write error PyMongo cannot parse: KeyError
        'nModified') as plain commands of at most the dialect's ``update_statements`` statements each.
        """
        if not statements:
            return []
        if self.dialect.bulk_write:
            return [(await self._bulk_update(collection, statements), statements)]
        size = self.dialect.update_statements or len(statements)
        replies = []
        for start in range(0, len(statements), size):
            batch = statements[start : start + size]
            reply = await self._db.command(
                {"update": collection, "updates": batch, "ordered": False, "writeConcern": self._write_concern.document}
            )
            if reply.get("writeConcernError"):
                raise StorageError(f"MongoDB write concern failed on {collection}: {reply['writeConcernError']}")
            replies.append((reply, batch))
        return replies

    async def _bulk_update(self, collection: str, statements: list[Document]) -> Document:
        """One unordered ``bulk_write`` of update statements, its result in the shape of an ``update`` reply."""
        requests = [_bulk_request(statement) for statement in statements]
        try:
            result = (await self._db[collection].bulk_write(requests, ordered=False)).bulk_api_result
        except mongo_errors.BulkWriteError as error:
            result = error.details
        if result.get("writeConcernErrors"):
            raise StorageError(f"MongoDB write concern failed on {collection}: {result['writeConcernErrors'][0]}")
        return {"n": result.get("nMatched", 0) + result.get("nUpserted", 0), "nModified": result.get("nModified", 0),
                "writeErrors": result.get("writeErrors", [])}

    async def get_version_page(
        self, kind: str, collection_id: str, document_id: str, after: int | None, limit: int
    ) -> VersionPage:
        query = {"ercollectionid": query_text(collection_id, "collection id"), "id": query_text(document_id, "id")}
        version = f"sysData.{VERSION_FIELD[kind]}"
        later = {**query, version: {"$gt": int(after)}} if after is not None else query
        history = self._db[f"{kind}_history"]

        async def page() -> list[Document]:
            if limit <= 0:
                return []
            return await history.find(later).sort(version, ASCENDING).limit(limit).to_list()

        with _driver_errors(f"read of {kind} history"):  # three reads of the unique (ercollectionid, id, version) index
            versions, total, newest = await asyncio.gather(
                page(), history.count_documents(query), history.find_one(query, sort=[(version, DESCENDING)]))
        return VersionPage([_returned(document) for document in versions], total,
                           _returned(newest) if newest is not None else None)

    async def _scan_history(self, kind: str, after: tuple[str, str, int] | None, limit: int) -> list[tuple[str, str, int]]:
        version = f"sysData.{VERSION_FIELD[kind]}"
        selector: Document = {}
        if after is not None:
            key = (query_text(after[0], "after collection"), query_text(after[1], "after id"), int(after[2]))
            selector = _strictly_after(("ercollectionid", "id", version), key)
        projection = {"_id": False, "ercollectionid": True, "id": True, version: True}
        order = [("ercollectionid", ASCENDING), ("id", ASCENDING), (version, ASCENDING)]
        with self._operation(f"scan of {kind} history"):  # the unique (ercollectionid, id, version) index, in order
            cursor = self._db[f"{kind}_history"].find(selector, projection).sort(order).limit(limit)
            found = await cursor.to_list()
        return [(stored["ercollectionid"], stored["id"], stored["sysData"][VERSION_FIELD[kind]]) for stored in found]

    async def find_applied(
        self, kind: str, collection_id: str, ids: Iterable[str], transaction_id: str
    ) -> dict[str, Document]:
        wanted = _texts(ids, "id")
        if not wanted:
            return {}
        version = f"sysData.{VERSION_FIELD[kind]}"
        transaction_id = query_text(transaction_id, "transaction id")
        # the transaction is checked here, not in the filter: with it, SecantusDB scans the whole history instead of
        # using the unique (collection, id, version) index (100 ids among 1,700 versions: 0.36 s against 0.04 s)
        query = {"ercollectionid": query_text(collection_id, "collection id"), "id": {"$in": wanted}}
        found: dict[str, Document] = {}
        with self._operation(f"read of {kind} history"):
            async for document in self._db[f"{kind}_history"].find(query).sort(version, ASCENDING):
                if document["sysData"].get("sysTransactionId") == transaction_id:
                    found[document["id"]] = document
        return {doc_id: _returned(document) for doc_id, document in found.items()}

    # ---- lists of versioned documents -----------------------------------------------------------------------

    async def _list_current(self, kind: str, collection_id: str, query: DocumentQuery) -> list[Document]:
        selector = _document_selector(collection_id, query)
        if query.after_id is not None:
            selector["id"] = {"$gt": query_text(query.after_id, "after id")}
        page: dict[str, Document] = {}  # by id: an entity may match by its type and by an additional type
        with self._operation(f"list of {kind}"):
            for part in _split_types(selector, _type_fields(kind, query), query.types):
                cursor = self._db[kind].find(part).sort("id", ASCENDING).limit(query.limit)
                page.update((document["id"], document) for document in await cursor.to_list())
        return [_returned(page[document_id]) for document_id in sorted(page)[: query.limit]]

    async def _count_current(self, kind: str, collection_id: str, query: DocumentQuery) -> int:
        selector = _with_types(_document_selector(collection_id, query), _type_fields(kind, query), query.types)
        with self._operation(f"count of {kind}"):
            return await self._db[kind].count_documents(selector)

    async def _find_edges(self, query: EdgeQuery) -> list[Document]:
        selector = _edge_selector(query)
        if query.after is not None:
            key = tuple(query_text(value, "after") for value in query.after)
            selector = {"$and": [selector, _strictly_after(("ercollectionid", "id"), key)]}
        with self._operation("read of edges"):
            cursor = self._db["relationships"].find(selector).sort([("ercollectionid", ASCENDING), ("id", ASCENDING)])
            if query.limit is not None:
                cursor = cursor.limit(query.limit)
            return [_returned(document) for document in await cursor.to_list()]

    async def _count_edges(self, query: EdgeQuery) -> dict[str, int]:
        pipeline = [{"$match": _edge_selector(query)}, {"$group": {"_id": "$ercollectionid", "count": {"$sum": 1}}}]
        with self._operation("count of edges"):
            groups = await (await self._db["relationships"].aggregate(pipeline)).to_list()
        return {group["_id"]: group["count"] for group in groups}

    async def _find_frontier_edges(self, query: FrontierQuery) -> list[Document]:
        selector = _frontier_selector(query)
        if selector is None:  # every side followed is kept to an empty set of types
            return []
        with self._operation("read of a frontier's edges"):
            cursor = self._db["relationships"].find(selector).sort([("ercollectionid", ASCENDING), ("id", ASCENDING)])
            if query.limit is not None:
                cursor = cursor.limit(query.limit)
            return [_returned(document) for document in await cursor.to_list()]

    async def get_current_across(self, kind: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Document]:
        grouped: dict[str, set[str]] = {}
        for collection_id, document_id in keys:
            grouped.setdefault(query_text(collection_id, "collection id"), set()).add(query_text(document_id, "id"))
        if not grouped:
            return {}
        # one clause per collection, each a range of the unique (ercollectionid, id) index
        clauses = [{"ercollectionid": collection_id, "id": {"$in": sorted(ids)}}
                   for collection_id, ids in sorted(grouped.items())]
        with self._operation(f"read of {kind} across collections"):
            found = await self._db[kind].find(clauses[0] if len(clauses) == 1 else {"$or": clauses}).to_list()
        return {(document["ercollectionid"], document["id"]): _returned(document) for document in found}

    async def count_by_type(self, kind: str, collection_id: str) -> dict[str, int]:
        pipeline = [
            {"$match": {"ercollectionid": query_text(collection_id, "collection id"), "isActive": {"$ne": False}}},
            {"$group": {"_id": f"${TYPE_FIELD[kind]}", "count": {"$sum": 1}}},
        ]
        with self._operation(f"count of {kind} by type"):
            groups = await (await self._db[kind].aggregate(pipeline)).to_list()
        return {group["_id"]: group["count"] for group in groups}

    async def _insert_new(self, collection: str, batch: list[Document], originals: Sequence[Document],
                          what: str) -> None:
        """Insert unordered; DuplicateError naming the ids of ``originals`` whose key already existed."""
        with self._operation(f"insert of {what}"):
            clashes = await self._insert_unordered(collection, batch, f"insert of {what}")
        if clashes:
            ids = ", ".join(str(originals[index]["id"]) for index in sorted(clashes))
            raise DuplicateError(f"{what} already exist: {ids}")

    async def _insert_unordered(self, collection: str, batch: list[Document], action: str) -> set[int]:
        """Insert ``batch`` unordered; return the indexes of the documents refused on a duplicate key.

        A document whose own ``_id`` is found stored is not refused but landed: PyMongo gave it a new ObjectId
        before sending, so only an earlier attempt of this very insert can have stored it (a retryable write
        re-sent after its answer was lost, which a server without retryable-write bookkeeping refuses).
        """
        try:
            await self._db[collection].insert_many(batch, ordered=False)
            return set()
        except mongo_errors.BulkWriteError as error:
            refused = _duplicates(error.details, action)
        ids = [batch[index]["_id"] for index in refused]
        landed = await self._db[collection].find({"_id": {"$in": ids}}, {"_id": True}).to_list()
        return {index for index in refused if batch[index]["_id"] not in {found["_id"] for found in landed}}

    # ---- job queue -----------------------------------------------------------------------------------------------
    # One document per chunk in ``jobs``, keyed by ``id`` alone: the queue is shared by every collection (a
    # worker takes the oldest chunk whatever its collection), so this collection stays unsharded.

    async def enqueue_chunks(self, chunks: Sequence[Document]) -> None:
        if not chunks:
            return
        batch = []
        for chunk in chunks:
            query_text(chunk["id"], "chunk id")
            stored = {**chunk, **NEW_CHUNK}
            stored.pop("_id", None)
            batch.append(stored)
        await self._insert_new(JOBS, batch, chunks, "chunks")

    async def claim_chunk(self, worker_id: str, now: float, lease_seconds: float) -> Document | None:
        claimable = {"$or": [{"state": "pending"}, {"state": "processing", "leaseExpiresAt": {"$lte": now}}]}
        claim = {"$set": leased(query_text(worker_id, "worker id"), now + lease_seconds), "$inc": {"attempts": 1}}
        with self._operation("claim of a job chunk"):
            # No projection: FerretDB 1.24 does not implement findAndModify's "fields".
            async with self._one_update_at_a_time():
                claimed = await self._db[JOBS].find_one_and_update(
                    claimable, claim, sort=[("createdAt", ASCENDING), ("id", ASCENDING)],
                    return_document=ReturnDocument.AFTER,
                )
        if claimed is not None:
            claimed.pop("_id", None)
        return claimed

    async def renew_chunk(self, chunk_id: str, worker_id: str, lease_expires_at: float) -> bool:
        with self._operation("renewal of a job lease"):
            async with self._one_update_at_a_time():
                result = await self._db[JOBS].update_one(
                    _owned(chunk_id, worker_id), {"$set": {"leaseExpiresAt": lease_expires_at}}
                )
        return result.matched_count == 1

    async def finish_chunk(self, chunk_id: str, worker_id: str, state: str) -> bool:
        # Nothing reads a finished chunk again (its items' status records tell the outcome): it is removed.
        with self._operation("finish of a job chunk"):
            async with self._one_update_at_a_time():
                result = await self._db[JOBS].delete_one(_owned(chunk_id, worker_id))
        return result.deleted_count == 1

    async def release_chunk(self, chunk_id: str, worker_id: str) -> bool:
        release = {"$set": dict(UNLEASED), "$inc": {"attempts": -1}}
        with self._operation("release of a job chunk"):
            async with self._one_update_at_a_time():
                result = await self._db[JOBS].update_one(_owned(chunk_id, worker_id), release)
        return result.matched_count == 1

    async def pending_items(self, collection_id: str | None) -> int:
        match: Document = {"state": {"$in": ["pending", "processing"]}}
        if collection_id is not None:
            match["ercollectionid"] = query_text(collection_id, "collection id")
        pipeline = [{"$match": match}, {"$group": {"_id": None, "items": {"$sum": "$itemCount"}}}]
        with self._operation("count of pending job items"):
            groups = await (await self._db[JOBS].aggregate(pipeline)).to_list()
        return groups[0]["items"] if groups else 0

    # ---- all-or-nothing batches: multi-document transactions ----------------------------------------------------

    def atomic_unavailable(self) -> str | None:
        return self._atomic_unavailable

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[Storage]:
        if self._atomic_unavailable is not None:
            raise StorageError(self._atomic_unavailable)
        with _transaction_errors():
            async with self._client.start_session() as session:
                await session.start_transaction()
                try:
                    yield _TransactionView(self, session)
                except BaseException:
                    await session.abort_transaction()
                    raise
                await session.commit_transaction()

    # ---- idempotency keys ------------------------------------------------------------------------------------
    # Claims are inserts keyed by _id, so the unique _id index decides between concurrent first requests, in
    # any number of processes and on every dialect (an insert is atomic on FerretDB 1.x too). FerretDB 1.x has
    # no TTL indexes, so expired records are swept by a delete every IDEMPOTENCY_SWEEP_EVERY claims instead (the
    # interface's claim_idempotency_key calls remove_expired_idempotency_keys).

    async def remove_expired_idempotency_keys(self, now: float) -> None:
        with self._operation("removal of expired idempotency keys"):
            await self._db[IDEMPOTENCY].delete_many({"expiresAt": {"$lt": now}})

    async def insert_idempotency_key(self, record: Document) -> Document | None:
        key_id = query_text(record["id"], "idempotency key id")
        stored = {**record, "_id": key_id}
        with self._operation("claim of an idempotency key"):
            try:
                await self._db[IDEMPOTENCY].insert_one(stored)
                return None
            except mongo_errors.DuplicateKeyError:
                held = await self._db[IDEMPOTENCY].find_one({"_id": key_id})
        if held is None:  # released between our insert and our read: insert again
            return await self.insert_idempotency_key(record)
        held.pop("_id", None)
        return held

    async def get_idempotency_key(self, key_id: str) -> Document | None:
        with self._operation("read of an idempotency key"):
            held = await self._db[IDEMPOTENCY].find_one({"_id": query_text(key_id, "idempotency key id")})
        if held is not None:
            held.pop("_id", None)
        return held

    async def finish_idempotency_key(self, key_id: str, owner: str, fields: Document) -> bool:
        held = {"_id": query_text(key_id, "idempotency key id"), "owner": query_text(owner, "owner")}
        update = {key: value for key, value in fields.items() if key not in {"id", "_id", "owner"}}
        with self._operation("write of an idempotency answer"):
            async with self._one_update_at_a_time():
                result = await self._db[IDEMPOTENCY].update_one(held, {"$set": update})
        return result.matched_count == 1

    async def release_idempotency_key(self, key_id: str, owner: str) -> bool:
        held = {"_id": query_text(key_id, "idempotency key id"), "owner": query_text(owner, "owner")}
        with self._operation("release of an idempotency key"):
            async with self._one_update_at_a_time():
                result = await self._db[IDEMPOTENCY].delete_one(held)
        return result.deleted_count == 1

    # ---- change log (storage_plugins/changes.py) ---------------------------------------------------------------

    async def _advance_counter(self, collection_id: str, count: int, at_least: int) -> int:
        key = f"counter:{query_text(collection_id, 'collection id')}"
        with self._operation("claim of change sequence numbers"):
            async with self._one_update_at_a_time():
                if at_least:
                    await self._update_mark(key, {"$max": {"value": at_least}})
                return await self._update_mark(key, {"$inc": {"value": count}})

    async def _update_mark(self, key: str, update: Document) -> int:
        """Apply ``update`` to a mark of ``change_marks`` and return its new value; the mark starts at 0.

        The mark is made first by an upsert that returns nothing, then updated by _id: SecantusDB answers some
        of several concurrent upserting findAndModify commands with no document although it applied them all,
        and a number claimed but not known would hold the feed for a whole grace period.
        """
        marks = self._db[CHANGE_MARKS]
        if key not in self._marks_made:
            try:
                await marks.update_one({"_id": key}, {"$setOnInsert": {"value": 0}}, upsert=True)
            except mongo_errors.DuplicateKeyError:
                pass  # a concurrent first upsert made it (FerretDB does not retry that itself)
            self._marks_made.add(key)
        marked = await marks.find_one_and_update({"_id": key}, update, return_document=ReturnDocument.AFTER)
        if marked is None:
            self._marks_made.discard(key)
            raise StorageError(f"MongoDB change mark {key} vanished while it was updated")
        return marked["value"]

    async def _mark(self, name: str, collection_id: str) -> int:
        with self._operation(f"read of the change log's {name}"):
            mark = f"{name}:{query_text(collection_id, 'collection id')}"
            found = await self._db[CHANGE_MARKS].find_one({"_id": mark})
        return found["value"] if found else 0

    async def _counter(self, collection_id: str) -> int:
        return await self._mark("counter", collection_id)

    async def _trimmed_up_to(self, collection_id: str) -> int:
        return await self._mark("trimmed", collection_id)

    async def _insert_changes(self, collection_id: str, records: Sequence[Document]) -> list[int]:
        if not records:
            return []
        batch = [_stored(record, query_text(collection_id, "collection id")) for record in records]
        with self._operation("write of changes"):
            return sorted(await self._insert_unordered(CHANGES, batch, "write of changes"))

    async def _taken_sequences(self, collection_id: str, sequences: Iterable[int]) -> set[int]:
        query = {"ercollectionid": query_text(collection_id, "collection id"), "sequence": {"$in": list(sequences)}}
        with self._operation("read of changes"):
            found = await self._db[CHANGES].find(query, {"_id": False, "sequence": True}).to_list()
        return {record["sequence"] for record in found}

    async def _change_records(self, collection_id: str, after: int, limit: int) -> list[Document]:
        if limit <= 0:
            return []
        query = {"ercollectionid": query_text(collection_id, "collection id"), "sequence": {"$gt": after}}
        with self._operation("read of changes"):  # a range of the unique (ercollectionid, sequence) index
            found = await self._db[CHANGES].find(query).sort("sequence", ASCENDING).limit(limit).to_list()
        return [_returned(record) for record in found]

    async def _trim(self, collection_id: str, up_to: int) -> None:
        collection_id = query_text(collection_id, "collection id")
        with self._operation("trim of changes"):
            async with self._one_update_at_a_time():
                await self._update_mark(f"trimmed:{collection_id}", {"$max": {"value": up_to}})
            await self._db[CHANGES].delete_many({"ercollectionid": collection_id, "sequence": {"$lte": up_to}})

    async def _newest_before(self, collection_id: str, moment: str) -> int:
        query = {"ercollectionid": query_text(collection_id, "collection id"), "time": {"$lt": moment}}
        with self._operation("read of changes"):  # the (ercollectionid, time, sequence) index, from its newest end
            cursor = self._db[CHANGES].find(query, {"sequence": True}).sort([("time", DESCENDING), ("sequence", DESCENDING)])
            found = await cursor.limit(1).to_list()
        return found[0]["sequence"] if found else 0

    # ---- log store: ACL library ------------------------------------------------------------------------------

    async def register_collection(self, record: Document) -> None:
        collection_id = query_text(record["collectionId"], "collectionId")
        stored = {"ercollectionid": collection_id, "id": REGISTRATION_KEY, "recordKind": REGISTRATION,
                  "record": record}
        with self._operation("registration of a collection"):
            try:
                await self._db[LOGS].insert_one(stored)
            except mongo_errors.DuplicateKeyError as error:
                raise DuplicateError(f"collection {collection_id} is already registered") from error

    async def put_grant(self, collection_id: str, principal: str, record: Document) -> None:
        key = {"ercollectionid": query_text(collection_id, "collection id"),
               "id": GRANT_KEY_PREFIX + query_text(principal, "principal")}
        stored = {**key, "recordKind": GRANT, "principal": principal, "record": record}
        with self._operation("write of a grant"):
            async with self._one_update_at_a_time():
                try:
                    await self._db[LOGS].replace_one(key, stored, upsert=True)
                except mongo_errors.DuplicateKeyError:
                    # A concurrent first grant of the same principal inserted it between our match and our
                    # insert (MongoDB retries that itself; FerretDB does not): it exists now, so replace it.
                    await self._db[LOGS].replace_one(key, stored, upsert=True)

    async def get_acl(self, collection_id: str) -> tuple[Document | None, list[Document]]:
        query = {"ercollectionid": query_text(collection_id, "collection id"),
                 "recordKind": {"$in": [REGISTRATION, GRANT]}}
        with self._operation("read of the ACL"):
            found = await self._db[LOGS].find(query).sort("id", ASCENDING).to_list()
        registration = next((item["record"] for item in found if item["recordKind"] == REGISTRATION), None)
        return registration, [item["record"] for item in found if item["recordKind"] == GRANT]

    async def list_granted_collections(self, principal: str, after: str | None, limit: int) -> GrantedCollections:
        granted = {"recordKind": GRANT, "principal": query_text(principal, "principal"),
                   "record.access.0": {"$exists": True}}  # a revocation leaves a grant with no access
        page_filter = granted if after is None else {**granted, "ercollectionid": {"$gt": query_text(after, "after")}}
        with self._operation("list of granted collections"):
            grants = await self._db[LOGS].find(page_filter).sort("ercollectionid", ASCENDING).limit(limit).to_list()
            ids = [grant["ercollectionid"] for grant in grants]
            found = await self._db[LOGS].find({"ercollectionid": {"$in": ids}, "id": REGISTRATION_KEY}).to_list()
            total = await self._db[LOGS].count_documents(granted)
        registrations = {item["ercollectionid"]: item["record"] for item in found}
        page = [(registrations.get(grant["ercollectionid"]), grant["record"]) for grant in grants]
        return GrantedCollections(page=page, total=total)


def _transactions_unavailable(dialect: MongoDialect, hello: Document) -> str | None:
    """Why this server cannot run multi-document transactions, or None when it can."""
    if not dialect.transactions:
        return f"the MongoDB server (dialect {dialect.name}, e.g. FerretDB 1.x) has no multi-document transactions"
    if "setName" not in hello and hello.get("msg") != "isdbgrid":
        return ("the MongoDB server is a standalone server; multi-document transactions need a replica set or a "
                "sharded cluster")
    return None


@contextlib.contextmanager
def _transaction_errors() -> Iterator[None]:
    """A transaction that lost to a concurrent writer is an AtomicConflict; every other failure a StorageError."""
    try:
        yield
    except mongo_errors.PyMongoError as error:
        if error.has_error_label("TransientTransactionError") or isinstance(error, mongo_errors.DuplicateKeyError):
            raise AtomicConflict(f"a concurrent writer changed the same documents ({error})") from error
        raise StorageError(f"MongoDB transaction failed: {error}") from error


class _TransactionView(WritePathView):
    """The write path's calls inside one transaction. Reads run outside it, as in any batch (the claims decide
    who wins); the claims and publishes run inside it, so they are kept together or not at all."""

    purpose = "an atomic batch"

    def __init__(self, storage: MongoStorage, session: Any) -> None:
        super().__init__(storage)
        self._session = session

    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        if documents:
            batch = [_stored(document, query_text(collection_id, "collection id")) for document in documents]
            with _transaction_errors():
                try:
                    await self._storage._db[f"{kind}_history"].insert_many(batch, session=self._session)
                except mongo_errors.BulkWriteError as error:
                    raise AtomicConflict("a concurrent writer claimed one of the batch's versions first") from error
        return ClaimResult(claimed=[document["id"] for document in documents])

    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        if not documents:
            return
        version = f"sysData.{VERSION_FIELD[kind]}"
        replacements = [
            ReplaceOne({"ercollectionid": collection_id, "id": document["id"],
                        version: {"$lt": _version(kind, document)}},
                       _stored(document, collection_id), upsert=True)
            for document in documents
        ]
        with _transaction_errors():
            try:
                await self._storage._db[kind].bulk_write(replacements, session=self._session)
            except mongo_errors.BulkWriteError as error:
                raise AtomicConflict("a concurrent writer published one of the batch's documents first") from error


def _indexes() -> list[tuple[str, IndexModel]]:
    """Every index, by collection: ``ercollectionid`` leads each key of the per-collection data, so that it can
    be the shard key; the job queue is global and stays unsharded."""
    return [*_document_and_log_indexes(), *status_indexes(), *_list_indexes(), *_queue_and_feed_indexes(),
            *SUBSCRIPTION_INDEXES]


def _document_and_log_indexes() -> list[tuple[str, IndexModel]]:
    """Versioned documents by id and version; status and ACL records by id, grant holder and tracker filter."""
    indexes = []
    for kind in KINDS:
        version = f"sysData.{VERSION_FIELD[kind]}"
        indexes.append((kind, IndexModel([("ercollectionid", ASCENDING), ("id", ASCENDING)], name="collection_id",
                                         unique=True)))
        indexes.append((
            f"{kind}_history",
            IndexModel([("ercollectionid", ASCENDING), ("id", ASCENDING), (version, ASCENDING)],
                       name="collection_id_version", unique=True),
        ))
    indexes.append((LOGS, IndexModel([("ercollectionid", ASCENDING), ("id", ASCENDING)], name="collection_id",
                                     unique=True)))
    # the collections a principal holds a grant on; sparse: only grant records have a principal field, so the
    # status records (most of this collection) stay out of it
    indexes.append((LOGS, IndexModel([("principal", ASCENDING)], name="grant_principal", sparse=True)))
    # a collection's ACL records (get_acl: recordKind in collection, grant) are one index range
    indexes.append((LOGS, IndexModel([("ercollectionid", ASCENDING), ("recordKind", ASCENDING),
                                      ("receivedTimestamp", ASCENDING), ("id", ASCENDING)], name="collection_kind_time")))
    return indexes


def _list_indexes() -> list[tuple[str, IndexModel]]:
    """Lists and edges: an entity's outgoing relationships, and incoming ones from any collection; the filters."""
    indexes = [("relationships", IndexModel(
        [("ercollectionid", ASCENDING), ("sourceEntityId", ASCENDING), ("id", ASCENDING)], name="collection_source"))]
    indexes.append(("relationships", IndexModel(
        [("destinationERCollectionId", ASCENDING), ("destinationEntityId", ASCENDING), ("ercollectionid", ASCENDING),
         ("id", ASCENDING)], name="destination")))
    # the other list filters: the field after ercollectionid, then id, so a page is an index range already in
    # order (a type filter's $in merges one range per name, at most TYPES_PER_QUERY of them); (ercollectionid,
    # isActive, type) answers the active count and the count by type from the index alone. An entity's
    # additionalEntityTypes (a list) get a multikey index: one entry per name, for subclass-aware lists
    for kind, fields in (("relationships", ("destinationEntityId", "destinationERCollectionId", "relationshipType")),
                         ("entities", ("entityType", ADDITIONAL_TYPES_FIELD))):
        for field in fields:
            indexes.append((kind, IndexModel([("ercollectionid", ASCENDING), (field, ASCENDING), ("id", ASCENDING)],
                                             name=f"collection_{field}")))
        indexes.append((kind, IndexModel(
            [("ercollectionid", ASCENDING), ("isActive", ASCENDING), (TYPE_FIELD[kind], ASCENDING)],
            name="collection_active_type")))
    return indexes


def _queue_and_feed_indexes() -> list[tuple[str, IndexModel]]:
    """The job queue (not per collection, see its methods), the change feed and the idempotency keys."""
    indexes = [(JOBS, IndexModel([("id", ASCENDING)], name="id", unique=True))]
    for fields, unique in ((["sequence"], True), (["key"], True), (["time", "sequence"], False)):
        indexes.append((CHANGES, IndexModel([("ercollectionid", ASCENDING), *((name, ASCENDING) for name in fields)],
                                            name=f"collection_{'_'.join(fields)}", unique=unique)))
    indexes.append((IDEMPOTENCY, IndexModel([("expiresAt", ASCENDING)], name="expiry")))
    indexes.append((JOBS, IndexModel([("state", ASCENDING), ("createdAt", ASCENDING), ("id", ASCENDING)],
                                     name="state_age")))
    indexes.append((JOBS, IndexModel([("ercollectionid", ASCENDING), ("state", ASCENDING)],
                                     name="collection_state")))
    return indexes


# Indexes of earlier versions that an index above replaces: `erapi storage init-indexes` drops them once their
# replacements exist.
SUPERSEDED_INDEXES = {
    LOGS: ("collection_time", "collection_transaction_time", "collection_correlation_time",
           "collection_relationship_time", "collection_entity_time",
           # the status records' own indexes before they moved to status_segments
           "collection_kind_transaction_time", "collection_kind_correlation_time",
           "collection_kind_relationship_time", "collection_kind_entity_time"),
    "entities": ("collection_active",),
    "relationships": ("collection_active",),
}


def _bulk_request(statement: Document) -> ReplaceOne | UpdateOne:
    """The bulk_write request of an ``update`` statement: a replacement, or an update (operators, a pipeline)."""
    upsert = statement.get("upsert", False)
    if isinstance(statement["u"], list) or any(name.startswith("$") for name in statement["u"]):
        return UpdateOne(statement["q"], statement["u"], upsert=upsert)
    return ReplaceOne(statement["q"], statement["u"], upsert=upsert)


def _owned(chunk_id: str, worker_id: str) -> Document:
    return {"id": query_text(chunk_id, "chunk id"), "state": "processing",
            "leaseOwner": query_text(worker_id, "worker id")}


def _document_selector(collection_id: str, query: DocumentQuery) -> Document:
    """The filters of a list as a selector without its type filter or paging."""
    selector: Document = {"ercollectionid": query_text(collection_id, "collection id")}
    for field, value in query.equalities().items():
        selector[field] = query_text(value, field)
    if query.active_only:
        selector["isActive"] = {"$ne": False}
    return selector


def _type_fields(kind: str, query: DocumentQuery) -> tuple[str, ...]:
    """The fields a type filter compares: the kind's type, and an entity's additional types when asked."""
    if kind == "entities" and query.additional_types:
        return TYPE_FIELD[kind], ADDITIONAL_TYPES_FIELD
    return (TYPE_FIELD[kind],)


def _with_types(selector: Document, fields: tuple[str, ...], types: frozenset[str] | None) -> Document:
    """The selector kept to documents one of whose ``fields`` names one of ``types`` (None: any)."""
    if types is None:
        return selector
    names = sorted(query_text(name, "type") for name in types)
    if len(fields) == 1:
        return {**selector, fields[0]: {"$in": names}}
    return {**selector, "$or": [{field: {"$in": names}} for field in fields]}


def _split_types(selector: Document, fields: tuple[str, ...], types: frozenset[str] | None) -> list[Document]:
    """The selector as one query per type field and TYPES_PER_QUERY type names, so that each page stays an
    index walk.

    MongoDB serves ``{type: {$in: names}}`` sorted by ``id`` from the (ercollectionid, type, id) index by merging
    one sorted range per name, but only up to 200 names (``internalQueryMaxScansToExplode``); beyond that it
    either walks every match of every name and sorts them, or walks the collection in id order filtering by
    type. A type with its subtypes can name ~950 (Point). Each part here is a merge of at most 200 ranges of one
    index (an entity's additional types have their own, multikey) that stops after ``limit`` documents; the
    caller merges the parts' pages, drops the documents two parts found, and keeps the first ``limit``.
    """
    if types is None:
        return [selector]
    names = sorted(query_text(name, "type") for name in types)
    return [{**selector, field: {"$in": names[start : start + TYPES_PER_QUERY]}}
            for field in fields for start in range(0, len(names), TYPES_PER_QUERY)]


def _edge_selector(query: EdgeQuery) -> Document:
    """The relationships touching one entity (see EdgeQuery), without paging; at least one side is followed."""
    collection_id = query_text(query.collection_id, "collection id")
    entity_id = query_text(query.entity_id, "entity id")
    ends = []
    if query.outgoing:
        ends.append({"ercollectionid": collection_id, "sourceEntityId": entity_id})
    if query.incoming:
        ends.append({"destinationERCollectionId": collection_id, "destinationEntityId": entity_id})
        # a relationship naming no destination collection points into its own
        ends.append({"ercollectionid": collection_id, "destinationERCollectionId": {"$exists": False},
                     "destinationEntityId": entity_id})
    return _edges_of_readable_collections(ends, query)


def _frontier_selector(query: FrontierQuery) -> Document | None:
    """One hop for a whole frontier (see FrontierQuery): per collection of the frontier, one clause per side,
    each a range of an index (outgoing: collection_source; incoming: destination, or collection_destinationEntityId
    for relationships naming no destination collection); None when nothing can match."""
    clauses = []
    for collection_id, ids in query.ids_by_collection().items():
        collection_id, ids = query_text(collection_id, "collection id"), _texts(ids, "entity id")
        if query.outgoing:
            clauses.append(_typed({"ercollectionid": collection_id, "sourceEntityId": {"$in": ids}},
                                  query.outgoing_types))
        if query.incoming:
            clauses.append(_typed({"destinationERCollectionId": collection_id, "destinationEntityId": {"$in": ids}},
                                  query.incoming_types))
            clauses.append(_typed({"ercollectionid": collection_id, "destinationERCollectionId": {"$exists": False},
                                   "destinationEntityId": {"$in": ids}}, query.incoming_types))
    return _edges_of_readable_collections([clause for clause in clauses if clause is not None], query)


def _edges_of_readable_collections(clauses: list[Document], query: EdgeQuery | FrontierQuery) -> Document | None:
    """Any of ``clauses``, kept to the query's source collections and, unless it asks for all, to active
    relationships; None when there is no clause (nothing can match)."""
    if not clauses:
        return None
    selector: Document = {"$or": clauses}
    if query.source_collections is not None:
        selector["ercollectionid"] = {"$in": sorted(query_text(c, "collection id") for c in query.source_collections)}
    if query.active_only:
        selector["isActive"] = {"$ne": False}
    return selector


def _typed(clause: Document, types: frozenset[str] | None) -> Document | None:
    """``clause`` kept to relationships of ``types`` (None: any type); None when ``types`` is empty."""
    if types is None:
        return clause
    if not types:
        return None
    return {**clause, "relationshipType": {"$in": sorted(query_text(name, "type") for name in types)}}


def _strictly_after(fields: Sequence[str], key: Sequence[Any]) -> Document:
    """The documents whose values of ``fields``, compared in that order, come strictly after ``key``: where a page
    sorted by ``fields`` continues after its last document."""
    clauses = []
    for depth, field in enumerate(fields):
        clauses.append({**dict(zip(fields[:depth], key[:depth])), field: {"$gt": key[depth]}})
    return {"$or": clauses}


def _duplicates(details: Document, action: str) -> set[int]:
    """Indexes of the statements that failed on a duplicate key; any other write error is a StorageError."""
    errors = details.get("writeErrors", [])
    other = [error for error in errors if error.get("code") != DUPLICATE_KEY]
    if other:
        raise StorageError(f"MongoDB {action} failed: {other[0].get('errmsg', other[0])}")
    if details.get("writeConcernErrors"):
        raise StorageError(f"MongoDB {action} failed: write concern error {details['writeConcernErrors'][0]}")
    return {error["index"] for error in errors}
