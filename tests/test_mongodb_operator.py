"""The MongoDB plugin as an operator runs it, on each test server (FerretDB: ferretdb1 dialect; SecantusDB:
mongodb dialect): index-backed ACL lookups, counts and status record reads (the filters sent, and ``explain``
where the server plans like MongoDB), retryable publishing, the operation timeout, BSON errors, and the index
check at start-up."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from pymongo import AsyncMongoClient, monitoring
from structlog.testing import capture_logs

from storage_plugins.base import DocumentQuery, EdgeQuery, LogQuery, StorageError, create_storage
from storage_plugins.mongodb import LOGS, _indexes
from storage_plugins.mongodb_status import STATUS_SEGMENTS
from tests.command_monitoring import DatabaseWindow

pytestmark = pytest.mark.mongodb
OPERATION_TIMEOUT_MS = 20000


class Commands(DatabaseWindow):
    """Every command sent to one database while a window is open: (name, command document)."""

    def fresh(self) -> list[tuple[str, dict]]:
        return []

    def record(self, collected: list[tuple[str, dict]], event: monitoring.CommandStartedEvent) -> None:
        collected.append((event.command_name, dict(event.command)))


COMMANDS = Commands()
monitoring.register(COMMANDS)  # applies to every client created from now on; it records only inside a window


@pytest.fixture
async def plugin(mongodb_server_uri):
    settings = {"uri": mongodb_server_uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "timeout_ms": 5000,
                "operation_timeout_ms": OPERATION_TIMEOUT_MS}
    storage = create_storage("mongodb", settings)
    await storage.open()
    try:
        yield storage
    finally:
        await storage._client.drop_database(settings["database"])
        await storage.close()


def entity(entity_id: str, entity_type: str = "BRICK_0_4__AHU", version: int = 1) -> dict:
    return {"id": entity_id, "entityType": entity_type, "isActive": True, "sysData": {"sysEntityVersion": version}}


def status_record(record_id: str, minute: int) -> dict:
    return {"id": record_id, "transactionId": "t1", "correlationId": "k1", "requestAction": "Upsert",
            "requestObject": "Entity", "state": "pending", "message": "", "stateHistory": [],
            "receivedTimestamp": f"2026-11-27T05:{minute:02d}:00.000000Z",
            "serviceData": {"erCollectionId": "c1", "entityId": record_id, "relationshipId": None}}


async def fill(storage) -> None:
    await storage.register_collection({"collectionId": "c1", "owner": "alice"})
    await storage.put_grant("c1", "bob", {"principal": "bob", "access": "read"})
    await storage.put_current("entities", "c1", [entity(f"e{i}", f"T{i % 3}") for i in range(6)])
    await storage.insert_logs([status_record(f"s{i}", i) for i in range(5)])


def filters(sent: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """(collection, filter) of every read sent: find's filter, aggregate's leading $match."""
    found = []
    for name, command in sent:
        if name == "find":
            found.append((command["find"], command.get("filter", {})))
        elif name == "aggregate" and command["pipeline"] and "$match" in command["pipeline"][0]:
            found.append((command["aggregate"], command["pipeline"][0]["$match"]))
    return found


def serving_index(collection: str, selector: dict) -> str | None:
    """The index whose leading keys are exactly the selector's fields, whatever their order: the index MongoDB
    bounds the scan with. Failing that, exactly its fields but those tested by $ne alone (left to a filter). A
    selector with $or needs one for each branch (MongoDB plans each branch on its own)."""
    if "$or" in selector:
        rest = {field: test for field, test in selector.items() if field != "$or"}
        served = [serving_index(collection, {**rest, **branch}) for branch in selector["$or"]]
        return served[0] if all(served) else None
    fields = {field for field in selector if not field.startswith("$")}
    residual = {field for field in fields if isinstance(selector[field], dict) and "$ne" in selector[field]}
    for bounded in (fields, fields - residual):
        for coll, index in _indexes():
            keys = list(index.document["key"])
            if coll == collection and bounded and set(keys[: len(bounded)]) == bounded:
                return index.document["name"]
    return None


def covering_index(collection: str, selector: dict, also: set[str]) -> str | None:
    """An index serving the selector that holds every field the command reads, so nothing is fetched."""
    name = serving_index(collection, selector)
    keys = next(set(index.document["key"]) for coll, index in _indexes()
                if coll == collection and index.document["name"] == name) if name else set()
    return name if name and set(selector) | also <= keys else None


async def test_get_acl_reads_its_records_through_an_index(plugin):
    await fill(plugin)
    with COMMANDS.window(plugin._database_name) as sent:
        registration, grants = await plugin.get_acl("c1")
    assert registration == {"collectionId": "c1", "owner": "alice"} and len(grants) == 1
    [(collection, selector)] = filters(sent)
    assert collection == LOGS
    assert selector == {"ercollectionid": "c1", "recordKind": {"$in": ["collection", "grant"]}}
    assert serving_index(LOGS, selector) == "collection_kind_time"
    await assert_index_scan(plugin, LOGS, selector)


@pytest.mark.parametrize("query", [
    LogQuery(collection_id="c1"),
    LogQuery(collection_id="c1", transaction_id="t1"),
    LogQuery(collection_id="c1", correlation_id="k1", start_time="2026-11-27T05:01:00.000000Z"),
    LogQuery(collection_id="c1", entity_id="s1", end_time="2026-11-27T05:03:00.000000Z"),
    LogQuery(collection_id="c1", relationship_id="r1"),
], ids=["all", "transaction", "correlation-since", "entity-until", "relationship"])
async def test_status_records_are_counted_and_read_through_an_index(plugin, query):
    await fill(plugin)
    with COMMANDS.window(plugin._database_name) as sent:
        await plugin.count_logs(query)
        await plugin.find_logs(query)
    for collection, selector in filters(sent):
        assert collection == STATUS_SEGMENTS and serving_index(STATUS_SEGMENTS, selector), selector
        await assert_index_scan(plugin, STATUS_SEGMENTS, selector)


@pytest.mark.parametrize("kind", ["entities", "relationships"])
async def test_count_by_type_is_answered_from_an_index(plugin, kind):
    await fill(plugin)
    with COMMANDS.window(plugin._database_name) as sent:
        await plugin.count_by_type(kind, "c1")
    [(collection, selector)] = filters(sent)
    type_field = "entityType" if kind == "entities" else "relationshipType"
    assert collection == kind and selector == {"ercollectionid": "c1", "isActive": {"$ne": False}}
    assert covering_index(kind, selector, {type_field}) == "collection_active_type"


async def test_the_other_counts_are_bounded_by_an_index(plugin):
    await fill(plugin)
    with COMMANDS.window(plugin._database_name) as sent:
        assert await plugin.count_current("entities", "c1", DocumentQuery(types=frozenset({"T1", "T2"}))) == 4
        await plugin.count_current("entities", "c1", DocumentQuery())
        await plugin.count_log_states("c1", "t1")
        await plugin.pending_items("c1")
        await plugin.pending_items(None)
        await plugin.count_edges(EdgeQuery(collection_id="c1", entity_id="e1", outgoing=True, incoming=False))
    for collection, selector in filters(sent):
        assert serving_index(collection, selector), (collection, selector)


async def assert_index_scan(plugin, collection: str, selector: dict) -> None:
    """On a server that plans like MongoDB (the mongodb dialect), ``explain`` shows an index scan, no collection
    scan. FerretDB 1.x explains its SQL instead (its SQLite backend uses no index but _id's)."""
    if plugin.dialect.name != "mongodb":
        return
    explained = await plugin._db.command("explain", {"find": collection, "filter": selector},
                                         verbosity="queryPlanner")
    stages, node = [], explained["queryPlanner"]["winningPlan"]
    while node:
        stages.append(node["stage"])
        node = node.get("inputStage")
    assert "IXSCAN" in stages and "COLLSCAN" not in stages, stages


async def test_publishing_is_a_retryable_write_on_the_mongodb_dialect(plugin):
    await plugin.put_current("entities", "c1", [entity("e1")])
    with COMMANDS.window(plugin._database_name) as sent:
        await plugin.put_current("entities", "c1", [entity("e1", version=2)])
    [update] = [command for name, command in sent if name == "update"]
    hello = await plugin._client.admin.command("hello")
    # PyMongo retries a write only on a replica set or sharded cluster, marking it with a transaction number
    retryable = plugin.dialect.bulk_write and "setName" in hello
    assert ("txnNumber" in update) == retryable
    assert (await plugin.get_current("entities", "c1", ["e1"]))["e1"]["sysData"]["sysEntityVersion"] == 2


async def test_every_command_carries_the_operation_timeout(plugin):
    with COMMANDS.window(plugin._database_name) as sent:
        await fill(plugin)
        await plugin.count_logs(LogQuery(collection_id="c1"))
    assert sent
    for name, command in sent:
        assert 0 < command.get("maxTimeMS", 0) <= OPERATION_TIMEOUT_MS, (name, command)


@pytest.mark.parametrize("bad", [{"a\x00b": 1}, {"count": 2**64}], ids=["nul-in-a-key", "int-beyond-64-bits"])
async def test_a_document_bson_cannot_encode_is_a_storage_error_and_nothing_is_written(plugin, bad):
    good, unencodable = entity("e1"), {**entity("e2"), **bad}
    with pytest.raises(StorageError, match="cannot be encoded as BSON"):
        await plugin.put_current("entities", "c1", [good, unencodable])
    with pytest.raises(StorageError, match="cannot be encoded as BSON"):
        await plugin.claim_versions("entities", "c1", [good, unencodable])
    assert await plugin.get_current("entities", "c1", ["e1", "e2"]) == {}
    assert await plugin.get_versions("entities", "c1", "e1") == []


async def test_start_up_refuses_data_without_its_unique_indexes_until_init_indexes(mongodb_server_uri):
    settings = {"uri": mongodb_server_uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "timeout_ms": 5000}
    client = AsyncMongoClient(mongodb_server_uri)
    try:
        await client[settings["database"]]["entities"].insert_one({"ercollectionid": "c1", "id": "e1"})
        await client[settings["database"]][LOGS].create_index("receivedTimestamp", name="collection_time")
        with pytest.raises(StorageError, match="lacks the unique index.*erapi storage init-indexes"):
            await create_storage("mongodb", settings).open()

        report = await create_storage("mongodb", settings).init_indexes()
        assert "built entities.collection_id" in report
        assert "dropped logs.collection_time (superseded)" in report
        assert await create_storage("mongodb", settings).init_indexes() == ["every index is present"]
        storage = create_storage("mongodb", settings)
        await storage.open()
        await storage.close()
    finally:
        await client.drop_database(settings["database"])
        await client.close()


async def test_start_up_warns_of_a_missing_index_that_is_not_unique_and_starts(mongodb_server_uri):
    settings = {"uri": mongodb_server_uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "timeout_ms": 5000}
    storage = create_storage("mongodb", settings)
    await storage.open()
    try:
        await storage.put_current("entities", "c1", [entity("e1")])
        await storage._db["entities"].drop_index("collection_entityType")
        await storage.close()
        with capture_logs() as logs:
            await storage.open()
        [warning] = [entry for entry in logs if entry["event"] == "storage.mongodb.indexes_missing"]
        assert warning["collection"] == "entities" and warning["indexes"] == ["collection_entityType"]
        assert (await storage.get_current("entities", "c1", ["e1"]))["e1"]["id"] == "e1"
    finally:
        await storage._client.drop_database(settings["database"])
        await storage.close()


async def test_erapi_storage_init_indexes_says_what_it_built(mongodb_server_uri, tmp_path):
    database = f"erapi_test_{uuid.uuid4().hex[:12]}"
    client = AsyncMongoClient(mongodb_server_uri)
    config = tmp_path / "erapi.toml"
    config.write_text(f'storage = "mongodb"\n[mongodb]\nuri = "{mongodb_server_uri}"\ndatabase = "{database}"\n')
    command = [sys.executable, "-m", "erapi.cli", "storage", "init-indexes", "--config", str(config)]
    try:
        await client[database]["jobs"].insert_one({"id": "chunk-1"})
        built = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert built.returncode == 0, built.stderr
        assert "built jobs.id" in built.stdout.splitlines()
        assert len(built.stdout.splitlines()) == len(_indexes())  # each index once, nothing dropped
        again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert (again.returncode, again.stdout) == (0, "every index is present\n"), again.stderr
    finally:
        await client.drop_database(database)
        await client.close()


def old_status_document(record: dict) -> dict:
    """A status record as versions before 2026-11-29 stored it: one document in logs, the record's fields flat."""
    return {**record, "ercollectionid": record["serviceData"]["erCollectionId"], "recordKind": "status"}


async def test_init_indexes_moves_status_records_of_an_older_version_so_their_trackers_still_resolve(
        mongodb_server_uri):
    settings = {"uri": mongodb_server_uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "timeout_ms": 5000}
    big = [{**status_record(f"s{i:04d}", 1), "transactionId": "t-big"} for i in range(1500)]
    other = [{**status_record(f"r{i}", 2), "transactionId": "t-other",
              "serviceData": {"erCollectionId": "c2", "entityId": f"r{i}", "relationshipId": None}} for i in range(3)]
    storage = create_storage("mongodb", settings)
    await storage.open()
    try:
        await storage.register_collection({"collectionId": "c1", "owner": "alice"})
        await storage.insert_logs(big[:40])  # an earlier move, cut short after inserting its first records
        await storage._db[LOGS].insert_many([old_status_document(record) for record in big + other])
        await storage.close()

        report = await create_storage("mongodb", settings).init_indexes()
        assert "moved 1503 status records from logs to status segments" in report
        assert await create_storage("mongodb", settings).init_indexes() == ["every index is present"]

        await storage.open()
        assert await storage.find_logs(LogQuery("c1", limit=2000)) == big
        assert await storage.find_logs(LogQuery("c2", transaction_id="t-other")) == other
        assert await storage._db[LOGS].count_documents({"recordKind": "status"}) == 0
        assert (await storage.get_acl("c1"))[0]["owner"] == "alice"  # the collection's own records stay
    finally:
        await storage._client.drop_database(settings["database"])
        await storage.close()
