"""The MongoDB plugin's database work without the service: the driver's own ceiling for a batch.

Each batch does what ``storage_plugins.mongodb`` does for one 100-relationship request of new ids, with the
same driver (PyMongo's asyncio API), write concern, indexes and document shapes:

1. find the referenced entities (one ``$in`` query);
2. find the current relationships of the ids (one ``$in`` query);
3. ``insert_many`` the new versions into ``relationships_history`` (unordered);
4. one ``update`` command of 100 upserts into the current view (``relationships``);
5. ``insert_many`` the 100 status records into ``logs`` (unordered).

(The ACL lookup is cached by the service, so it is not repeated here.) ``concurrency`` batches are in flight
at once, as the service has ``connections`` requests in flight. The indexes are created by the plugin's own
``open()``, so they are the service's exactly; nothing else of the plugin runs in the loop. Against FerretDB
the loop does what the plugin does there: update commands of at most ``FERRETDB_UPDATE_STATEMENTS``
statements, one at a time per process (FerretDB 1.24 deadlocks on larger ones and loses concurrent updates).

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
from datetime import datetime, timezone

import orjson

from bench import workload

VERSION = "sysData.sysRelationshipVersion"


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Batches:
    """Documents of one batch as the service stores them, with new ids each time."""

    def __init__(self, collection: str):
        self.collection = collection
        self.template = workload.relationship_template(collection=collection)
        self.counter = 0

    def next(self, tag: str) -> tuple[list[str], list[str], list[dict], list[dict]]:
        items = orjson.loads(workload.render(self.template, self.counter, tag))
        self.counter += 1
        now = _timestamp()
        transaction = str(uuid.uuid4())
        documents, records = [], []
        for index, item in enumerate(items):
            documents.append({
                **item,
                "brickRelationshipName": "isFedBy",
                "brickRelationshipType": "BRICK_0_4__isFedBy",
                "isActive": True,
                "sysData": {"sysRelationshipVersion": 1, "sysCreatedAt": now, "sysCreatedBy": "bench",
                            "sysUpdatedAt": now, "sysUpdatedBy": "bench", "sysTransactionId": transaction},
            })
            state = {"timestamp": now, "unixTimestamp": int(time.time() * 1000)}
            records.append({
                "id": f"{transaction}.{index:05d}", "transactionId": transaction, "correlationId": transaction,
                "requestAction": "Upsert", "requestObject": "Relationship", "state": "Completed",
                "message": "Relationship upserted successfully",
                "serviceData": {"erCollectionId": self.collection, "entityId": None, "relationshipId": item["id"]},
                "receivedTimestamp": now,
                "stateHistory": [{**state, "state": "Requested"}, {**state, "state": "Processing"},
                                 {**state, "state": "Completed"}],
            })
        entity_ids = list(dict.fromkeys(
            entity for item in items for entity in (item["sourceEntityId"], item["destinationEntityId"])))
        return entity_ids, [item["id"] for item in items], documents, records


async def prepare(uri: str, database: str, collection: str, write_concern: str, journal: bool) -> None:
    """Indexes through the plugin's own open(), then the 200 AHUs the relationships reference."""
    from storage_plugins.mongodb import MongoStorage

    storage = MongoStorage(uri=uri, database=database, write_concern=write_concern, journal=journal)
    await storage.open()
    await storage.close()
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        now = _timestamp()
        entities = [
            {**entity, "ercollectionid": collection, "brickEntityType": "BRICK_0_4__Equipment",
             "brickEntitySubType": workload.ENTITY_TYPE, "isActive": True,
             "sysData": {"sysEntityVersion": 1, "sysCreatedAt": now, "sysCreatedBy": "bench", "sysUpdatedAt": now,
                         "sysUpdatedBy": "bench", "sysTransactionId": "bench"}}
            for batch in workload.entity_batches() for entity in batch
        ]
        await client[database]["entities"].insert_many(entities, ordered=False)
    finally:
        await client.close()


async def loop(uri: str, database: str, collection: str, duration: float, warmup: float, concurrency: int,
               write_concern: str, journal: bool) -> dict:
    from pymongo import AsyncMongoClient, WriteConcern

    from storage_plugins import mongodb as plugin

    concern = WriteConcern(w="majority" if write_concern == "majority" else int(write_concern), j=journal)
    client = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000, appname="erapi-bench-raw")
    db = client.get_database(database, write_concern=concern)
    ferretdb = "ferretdbVersion" in await db.command("buildInfo")
    statements_per_update = getattr(plugin, "FERRETDB_UPDATE_STATEMENTS", 25) if ferretdb else 0
    update_lock = asyncio.Lock() if ferretdb else contextlib.nullcontext()
    batches = Batches(collection)
    latencies: list[float] = []
    counted = 0
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async def one_batch(tag: str) -> None:
        entity_ids, ids, documents, records = batches.next(tag)
        await db["entities"].find({"ercollectionid": collection, "id": {"$in": entity_ids}}).to_list()
        await db["relationships"].find({"ercollectionid": collection, "id": {"$in": ids}}).to_list()
        await db["relationships_history"].insert_many(
            [{**document, "ercollectionid": collection} for document in documents], ordered=False)
        statements = [{"q": {"ercollectionid": collection, "id": document["id"], VERSION: {"$lt": 1}},
                       "u": {**document, "ercollectionid": collection}, "upsert": True} for document in documents]
        size = statements_per_update or len(statements)
        for start in range(0, len(statements), size):
            async with update_lock:
                reply = await db.command({"update": "relationships", "updates": statements[start:start + size],
                                          "ordered": False, "writeConcern": concern.document})
            if reply.get("writeErrors"):
                raise RuntimeError(f"update failed: {reply['writeErrors'][0]}")
        await db["logs"].insert_many(
            [{**record, "ercollectionid": collection, "recordKind": "status"} for record in records],
            ordered=False)

    async def worker(number: int) -> None:
        nonlocal counted
        tag = workload.tag(0x40 + number // 256, number % 256)
        while time.monotonic() < stop_at:
            began = time.monotonic()
            await one_batch(tag)
            finished = time.monotonic()
            if measure_from <= finished <= stop_at:  # as wrk counts: completions within the window
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

    return {"server": "FerretDB" if ferretdb else "MongoDB", "batches": counted, "duration_s": duration,
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
        await prepare(arguments.uri, arguments.database, arguments.collection, arguments.write_concern, journal)
        return await asyncio.wait_for(
            loop(arguments.uri, arguments.database, arguments.collection, arguments.duration, arguments.warmup,
                 arguments.concurrency, arguments.write_concern, journal),
            arguments.warmup + arguments.duration + 120)

    print("RAW " + orjson.dumps(asyncio.run(run())).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
