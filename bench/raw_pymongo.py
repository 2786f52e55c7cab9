"""The MongoDB plugin's database work without the service: the driver's own ceiling for a batch.

Each batch sends the commands ``storage_plugins.mongodb`` sends for one 100-relationship request of new ids
(``erapi.writes``: the entities, the current view, the claim, the publish; then the status records), in
the same order and with the same shapes, through the same driver (PyMongo's asyncio API), write concern,
indexes and document shapes:

1. ``find`` the types of the referenced active entities (one ``$in`` of 150 ids, projected to ``id``,
   ``entityType`` and ``additionalEntityTypes``; the driver may fetch the rest with a ``getMore``);
2. ``find`` the current relationships of the ids (one ``$in``);
3. ``insert_many`` the new versions into ``relationships_history`` (unordered);
4. the change feed: a ``findAndModify`` claiming the batch's sequence numbers on the collection's counter in
   ``change_marks`` (made once, in ``prepare``, as the plugin makes it at a collection's first write), then
   ``insert_many`` of the 100 change records into ``changes`` (unordered);
5. the current view (``relationships``), as the plugin's ``put_current`` writes it on this server:

   - MongoDB: one unordered ``bulk_write`` (an ``update`` command) of 100 upserts on the unique key, each
     replacing the document by a pipeline if the stored version is lower;
   - FerretDB (its SQLite backend uses no index except for an exact ``{_id: value}`` filter, so a
     conditional upsert scans the collection): under a process-wide lock, a ``find`` of the ids' stored
     versions (projection ``_id``, ``id``, ``sysData``), ``insert_many`` of the ids not stored (unordered),
     and ``update`` commands replacing by ``_id`` the stored ids with a lower version, at most
     the dialect's ``update_statements`` statements each (with new ids there are none);

6. ``insert_many`` the 100 status records into ``logs`` (unordered).

(The ACL lookup is cached by the service, so it is not repeated here.) Which path is taken is what the
plugin's own ``open()`` chose (``MongoStorage.dialect``: ``atomic_updates``, ``update_statements``); ``open()`` also
creates the indexes, so they are the service's exactly. Nothing else of the plugin runs in the loop: every
command is a raw PyMongo call. ``concurrency`` batches are in flight at once, as the service has
``connections`` requests in flight. tests/test_bench_raw_pymongo.py checks that one batch sends the
commands (names, collections, document and statement counts) one request of the service sends.

    python -m bench.raw_pymongo --uri mongodb://127.0.0.1:27017 --database erapi_bench_raw --duration 10

prints one line ``RAW {json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from bench import workload
from erapi.timestamps import utc_timestamp
from erapi.writes.status_records import item_record_id
from storage_plugins.base import VERSION_FIELD

KIND = "relationships"
VERSION = f"sysData.{VERSION_FIELD[KIND]}"


@dataclass(frozen=True)
class Server:
    """What the plugin's ``open()`` learnt of the server: which ``put_current`` path it takes there."""

    atomic_updates: bool  # True: conditional upserts (MongoDB); False: find, insert, replace by _id (FerretDB)
    update_statements: int | None  # most statements in one update command; None: no limit

    @property
    def name(self) -> str:
        # only FerretDB lacks atomic updates (see MongoStorage.open)
        return "MongoDB" if self.atomic_updates else "FerretDB"

    def update_lock(self) -> contextlib.AbstractAsyncContextManager:
        """The plugin's update lock: one put_current at a time per process where updates are not atomic."""
        return contextlib.nullcontext() if self.atomic_updates else asyncio.Lock()


@dataclass
class Batch:
    entity_ids: list[str]
    ids: list[str]
    documents: list[dict]  # the new versions, as the service builds them
    records: list[dict]  # the status records, as the service builds them


class Batches:
    """Documents of one batch as the service stores them, with new ids each time."""

    def __init__(self, collection: str):
        self.collection = collection
        self.template = workload.relationship_template(collection=collection)
        self.counter = 0

    def next(self, tag: str) -> Batch:
        items = orjson.loads(workload.render(self.template, self.counter, tag))
        self.counter += 1
        now = utc_timestamp()
        transaction = str(uuid.uuid4())
        documents, records = [], []
        for index, item in enumerate(items):
            documents.append({
                **item,
                "brickRelationshipName": "isFedBy",
                "brickRelationshipType": "BRICK_0_4__isFedBy",
                "isActive": True,
                "sysData": {VERSION_FIELD[KIND]: 1, "sysCreatedAt": now, "sysCreatedBy": "bench",
                            "sysUpdatedAt": now, "sysUpdatedBy": "bench", "sysTransactionId": transaction},
            })
            state = {"timestamp": now, "unixTimestamp": int(time.time() * 1000)}
            records.append({
                "id": item_record_id(transaction, index), "transactionId": transaction, "correlationId": transaction,
                "requestAction": "Upsert", "requestObject": "Relationship", "state": "Completed",
                "message": "Relationship upserted successfully",
                "serviceData": {"erCollectionId": self.collection, "entityId": None, "relationshipId": item["id"]},
                "receivedTimestamp": now,
                "stateHistory": [{**state, "state": "Requested"}, {**state, "state": "Processing"},
                                 {**state, "state": "Completed"}],
            })
        entity_ids = list(dict.fromkeys(
            entity for item in items for entity in (item["sourceEntityId"], item["destinationEntityId"])))
        return Batch(entity_ids, [item["id"] for item in items], documents, records)


async def prepare(uri: str, database: str, collection: str, write_concern: str, journal: bool) -> Server:
    """Indexes and server detection through the plugin's own open(), then the 200 AHUs the relationships
    reference."""
    from storage_plugins.mongodb import MongoStorage

    storage = MongoStorage(uri=uri, database=database, write_concern=write_concern, journal=journal)
    await storage.open()
    server = Server(atomic_updates=storage.dialect.atomic_updates, update_statements=storage.dialect.update_statements)
    await storage.close()
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        now = utc_timestamp()
        entities = [
            {**entity, "ercollectionid": collection, "brickEntityType": "BRICK_0_4__Equipment",
             "brickEntitySubType": workload.ENTITY_TYPE, "isActive": True,
             "sysData": {"sysEntityVersion": 1, "sysCreatedAt": now, "sysCreatedBy": "bench", "sysUpdatedAt": now,
                         "sysUpdatedBy": "bench", "sysTransactionId": "bench"}}
            for batch in workload.entity_batches() for entity in batch
        ]
        await client[database]["entities"].insert_many(entities, ordered=False)
        from storage_plugins.mongodb import CHANGE_MARKS

        await client[database][CHANGE_MARKS].update_one({"_id": counter_mark(collection)},
                                                        {"$setOnInsert": {"value": 0}}, upsert=True)
    finally:
        await client.close()
    return server


def write_concern_of(write_concern: str, journal: bool):
    from pymongo import WriteConcern

    return WriteConcern(w="majority" if write_concern == "majority" else int(write_concern), j=journal)


async def _update(db: Any, collection: str, statements: list[dict], size: int | None) -> None:
    """Unordered ``update`` commands of at most ``size`` statements (one command when None), as the plugin."""
    size = size or len(statements)
    for start in range(0, len(statements), size):
        reply = await db.command({"update": collection, "updates": statements[start:start + size],
                                  "ordered": False, "writeConcern": db.write_concern.document})
        if reply.get("writeErrors") or reply.get("writeConcernError"):
            raise RuntimeError(f"update of {collection} failed: {reply.get('writeErrors') or reply}")


async def one_batch(db: Any, collection: str, batch: Batch, server: Server,
                    update_lock: contextlib.AbstractAsyncContextManager) -> None:
    """The commands of one request of the service for ``batch``, as raw PyMongo calls."""
    from storage_plugins.mongodb import ADDITIONAL_TYPES_FIELD

    # get_active_types("entities"): the types of the active entities of both ends
    await db["entities"].find({"ercollectionid": collection, "id": {"$in": batch.entity_ids}},
                              {"_id": False, "id": True, "isActive": True, "entityType": True,
                               ADDITIONAL_TYPES_FIELD: True}).to_list()
    # get_current("relationships"): the current versions the new ones build on
    await db[KIND].find({"ercollectionid": collection, "id": {"$in": batch.ids}}).to_list()
    # claim_versions: the history's unique (ercollectionid, id, version) index decides each version
    current = [{**document, "ercollectionid": collection} for document in batch.documents]
    await db[f"{KIND}_history"].insert_many(current, ordered=False)
    await record_changes(db, collection, batch, server, update_lock)
    # put_current: publish the claimed versions to the current view
    if server.atomic_updates:
        # one unordered bulk_write of upserts on the unique key, the version compared inside the update
        from pymongo import UpdateOne

        newer = {document["id"]: {"$lt": [f"${VERSION}", document["sysData"][VERSION_FIELD[KIND]]]}
                 for document in current}
        await db[KIND].bulk_write([
            UpdateOne({"ercollectionid": collection, "id": document["id"]}, [{"$replaceWith": {"$cond": [
                newer[document["id"]], {"$mergeObjects": [{"_id": "$_id"}, {"$literal": document}]}, "$$ROOT"]}}],
                upsert=True)
            for document in current
        ], ordered=False)
    else:
        async with update_lock:
            cursor = db[KIND].find({"ercollectionid": collection, "id": {"$in": batch.ids}},
                                   {"_id": True, "id": True, "sysData": True})
            stored = {document["id"]: document for document in await cursor.to_list()}
            fresh = [document for document in current if document["id"] not in stored]
            replacements = [
                {"q": {"_id": stored[document["id"]]["_id"]}, "u": document} for document in current
                if document["id"] in stored
                and stored[document["id"]]["sysData"][VERSION_FIELD[KIND]] < document["sysData"][VERSION_FIELD[KIND]]
            ]
            if fresh:
                await db[KIND].insert_many(fresh, ordered=False)
            await _update(db, KIND, replacements, server.update_statements)
    await insert_status_records(db, collection, batch.records)


async def insert_status_records(db: Any, collection: str, records: list[dict]) -> None:
    """insert_logs: the status records in segments of 100, their ids looked up first (a duplicate is refused)."""
    from storage_plugins.mongodb_status import STATUS_SEGMENTS, segment_documents
    from storage_plugins.status_batch import group

    for status_batch in group(records):
        await db[STATUS_SEGMENTS].find({"ercollectionid": collection, "ids": {"$in": status_batch.ids}},
                                       {"_id": False, "ids": True}).to_list()
        await db[STATUS_SEGMENTS].insert_many(segment_documents(status_batch))


async def record_changes(db: Any, collection: str, batch: Batch, server: Server,
                         update_lock: contextlib.AbstractAsyncContextManager) -> None:
    """publish, first part: claim the batch's sequence numbers, then insert its change records."""
    from pymongo import ReturnDocument

    from storage_plugins.changes import versioned_changes
    from storage_plugins.mongodb import CHANGE_MARKS, CHANGES

    count = len(batch.documents)
    async with contextlib.nullcontext() if server.atomic_updates else update_lock:
        marked = await db[CHANGE_MARKS].find_one_and_update(
            {"_id": counter_mark(collection)}, {"$inc": {"value": count}}, return_document=ReturnDocument.AFTER)
    first = marked["value"] - count + 1
    records = [{**change, "sequence": first + offset, "key": f"{change['kind']}/{change['id']}/{change['version']}",
                "ercollectionid": collection}
               for offset, change in enumerate(versioned_changes(KIND, batch.documents))]
    await db[CHANGES].insert_many(records, ordered=False)


def counter_mark(collection: str) -> str:
    return f"counter:{collection}"


async def loop(uri: str, database: str, collection: str, duration: float, warmup: float, concurrency: int,
               write_concern: str, journal: bool, server: Server) -> dict:
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000, appname="erapi-bench-raw")
    db = client.get_database(database, write_concern=write_concern_of(write_concern, journal))
    update_lock = server.update_lock()
    batches = Batches(collection)
    latencies: list[float] = []
    counted = 0
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def worker(number: int) -> None:
        nonlocal counted
        tag = workload.tag(0x40 + number // 256, number % 256)
        while time.monotonic() < stop_at:
            began = time.monotonic()
            await one_batch(db, collection, batches.next(tag), server, update_lock)
            finished = time.monotonic()
            # as wrk counts: requests sent within the window and answered within it (the warm-up's batches
            # still in flight at its end are finished but not counted, as the service finishes the warm-up
            # wrk's requests while the measured wrk runs)
            if measure_from <= began and finished <= stop_at:
                counted += 1
                latencies.append(finished - began)

    tasks = [asyncio.ensure_future(worker(n)) for n in range(concurrency)]
    try:
        # like wrk, stop at the end of the window: batches still in flight are abandoned, not waited for
        done, _ = await asyncio.wait(tasks, timeout=max(0.0, stop_at - time.monotonic()) + 0.05)
        for task in done:
            task.result()  # a failed batch is an error of the run, not a slow answer
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000 if latencies else 0.0

    return {"server": server.name, "batches": counted, "duration_s": duration,
            "batches_per_s": counted / duration,
            "relationships_per_s": counted * workload.ITEMS_PER_REQUEST / duration,
            "p50_ms": percentile(0.50), "p99_ms": percentile(0.99)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_pymongo", description=__doc__.splitlines()[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", required=True, help="a scratch database (created, not dropped)")
    parser.add_argument("--collection", default=workload.COLLECTION)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--write-concern", default="majority", help='"majority" or a number (as the service)')
    parser.add_argument("--journal", choices=("true", "false"), default="true")
    arguments = parser.parse_args(argv)
    journal = arguments.journal == "true"

    async def run() -> dict:
        server = await prepare(arguments.uri, arguments.database, arguments.collection, arguments.write_concern,
                               journal)
        return await asyncio.wait_for(
            loop(arguments.uri, arguments.database, arguments.collection, arguments.duration, arguments.warmup,
                 arguments.concurrency, arguments.write_concern, journal, server),
            arguments.warmup + arguments.duration + 120)

    print("RAW " + orjson.dumps(asyncio.run(run())).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
