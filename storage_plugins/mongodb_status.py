"""The MongoDB plugin's status records (storage_plugins/logs.py): one document per *segment*, up to SEGMENT records
of one transaction in id order, in ``status_segments``.

Why segments, not one document per record: an async job moves each of its records twice, and a status tracker
poll counts a job's records by state. One document per record made that a few hundred thousand document updates
and aggregations over every record of the job; FerretDB 1.x, whose SQLite backend scans the collection for
every document it updates and every query but ``{_id: value}``, took 1,085 s to import a 3,616-item model
(docs/BRICK.md). A segment is the StatusBatch of storage_plugins/status_batch.py as a document: what its records
share once; the columns the tracker's filters need an index for as arrays (``ids``, ``entityIds``,
``relationshipIds``: multikey indexes); the others (request objects, states, messages, histories as positions in
``entries``, entries) as one JSON text, ``body``: FerretDB 1.x decodes every value of every document it scans
(38 segments: 0.35 s with every column an array, 0.13 s with a body; SecantusDB 28 and 11 ms), and stores no
array in an array. So a chunk's move is one update of one or two documents, and a job's counts one read of its
segments' bodies.

Every read answers exactly as one document per record would: segments are found by the tracker's filters
(multikey indexes on the id columns), sorted by (receivedTimestamp, first id), and their records filtered,
merged by (receivedTimestamp, id) and cut to the page here. A move rewrites the changed columns of a segment
conditionally on its ``revision``; a segment another writer changed meanwhile is read again and its moves decided
again (``transitions_that_move``), so concurrent workers move each record forward only.

Mixed into MongoStorage: it uses that class's database handle and guards (``_operation``,
``_one_update_at_a_time``).
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any, Iterable, Sequence

import orjson
from pymongo import ASCENDING, IndexModel

from storage_plugins.common import Document, DuplicateError, StorageError, query_text
from storage_plugins.logs import LogQuery, LogStore, LogTransition, transitions_that_move
from storage_plugins.status_batch import StatusBatch

STATUS_SEGMENTS = "status_segments"
SEGMENT = 100  # records per segment: an async job's chunk size, so a chunk's move touches one or two segments
JOB = "Job"  # the requestObject of a job's own record, which the item counts leave out
MOVE_ATTEMPTS = 20  # reads of a segment that other writers keep changing before a move gives up
COLUMNS = {"entity_id": "entity_ids", "relationship_id": "relationship_ids", "state": "states"}  # per-record filters
SORT = [("receivedTimestamp", ASCENDING), ("first", ASCENDING)]


def status_indexes() -> list[tuple[str, IndexModel]]:
    """A record by its id (moves, the duplicate check); the tracker's filters, each followed by its sort."""
    indexes = [(STATUS_SEGMENTS, IndexModel([("ercollectionid", ASCENDING), ("ids", ASCENDING)],
                                            name="collection_ids"))]
    indexes.append((STATUS_SEGMENTS, IndexModel([("ercollectionid", ASCENDING), *SORT], name="collection_time")))
    for name, field in (("transaction", "transactionId"), ("correlation", "correlationId"),
                        ("relationship", "relationshipIds"), ("entity", "entityIds")):
        indexes.append((STATUS_SEGMENTS, IndexModel([("ercollectionid", ASCENDING), (field, ASCENDING), *SORT],
                                                    name=f"collection_{name}_time")))
    return indexes


class MongoStatusRecords(LogStore):
    async def insert_status_batch(self, batch: StatusBatch) -> None:
        if not len(batch):
            return
        collection_id = query_text(batch.collection_id, "serviceData.erCollectionId")
        for record_id in batch.ids:
            query_text(record_id, "record id")
        with self._operation("insert of status records"):
            async with self._one_update_at_a_time():
                taken = await self._stored_ids(collection_id, batch.ids)
                clashes = _clashes(batch.ids, taken)
                segments = segment_documents(batch, clashes)
                if segments:
                    await self._db[STATUS_SEGMENTS].insert_many(segments)
        if clashes:
            raise DuplicateError(f"log records already exist: {', '.join(batch.ids[index] for index in clashes)}")

    async def _stored_ids(self, collection_id: str, ids: Sequence[str]) -> set[str]:
        wanted = set(ids)
        cursor = self._db[STATUS_SEGMENTS].find({"ercollectionid": collection_id, "ids": {"$in": list(wanted)}},
                                                {"_id": False, "ids": True})
        return {record_id for segment in await cursor.to_list() for record_id in segment["ids"] if record_id in wanted}

    async def _find_logs(self, query: LogQuery) -> list[Document]:
        selector = _segment_selector(query)
        after = None if query.after is None else tuple(query_text(value, "after") for value in query.after)
        if after is not None:
            selector["$or"] = [{"receivedTimestamp": {"$gt": after[0]}},
                               {"receivedTimestamp": after[0], "last": {"$gt": after[1]}}]
        found: list[tuple[tuple[str, str], StatusBatch, int]] = []  # (sort key, segment, index), in key order
        with self._operation("read of status records"):
            cursor = self._db[STATUS_SEGMENTS].find(selector).sort(SORT).batch_size(min(query.limit + 1, 100))
            async for stored in cursor:
                start = (stored["receivedTimestamp"], stored["first"])
                if len(found) >= query.limit and found[query.limit - 1][0] < start:
                    break  # this segment and every later one sort after the page's last record
                segment = _batch(stored)
                for index in _matching(segment, query):
                    key = (segment.received, segment.ids[index])
                    if after is None or key > after:
                        bisect.insort(found, (key, segment, index), key=lambda entry: entry[0])
            await cursor.close()
        return [segment.record(index) for _, segment, index in found[:query.limit]]

    async def count_logs(self, query: LogQuery) -> int:
        per_record = any(getattr(query, filter_) is not None for filter_ in COLUMNS)
        projection = None if per_record else {"_id": False, "size": True}
        with self._operation("count of status records"):
            segments = await self._db[STATUS_SEGMENTS].find(_segment_selector(query), projection).to_list()
        if not per_record:
            return sum(segment["size"] for segment in segments)
        return sum(len(_matching(_batch(segment), query)) for segment in segments)

    async def transition_logs(self, collection_id: str, transitions: Sequence[LogTransition]) -> int:
        if not transitions:
            return 0
        collection_id = query_text(collection_id, "collection id")
        for transition in transitions:
            query_text(transition.record_id, "record id")
        moved = 0
        with self._operation("transition of status records"):
            async with self._one_update_at_a_time():
                for _ in range(MOVE_ATTEMPTS):
                    changed, transitions = await self._move_segments(collection_id, transitions)
                    moved += changed
                    if not transitions:
                        return moved
        raise StorageError(f"MongoDB transition of status records failed: their segments kept changing under "
                           f"{MOVE_ATTEMPTS} attempts")

    async def _move_segments(self, collection_id: str, transitions: Sequence[LogTransition]
                             ) -> tuple[int, list[LogTransition]]:
        """Apply the transitions to the segments holding their records, one conditional update per segment;
        how many moved, and the transitions of the segments another writer changed meanwhile (to do again)."""
        wanted = {transition.record_id for transition in transitions}
        cursor = self._db[STATUS_SEGMENTS].find({"ercollectionid": collection_id, "ids": {"$in": list(wanted)}})
        held: dict[str, tuple[Document, int]] = {}  # record id -> (its segment, its index there)
        for segment in await cursor.to_list():
            held.update((record_id, (segment, index)) for index, record_id in enumerate(segment["ids"])
                        if record_id in wanted)
        bodies = {id(segment): _body(segment) for segment, _ in held.values()}
        states = {record_id: bodies[id(segment)]["states"][index] for record_id, (segment, index) in held.items()}
        by_segment: dict[Any, list[LogTransition]] = {}
        for transition in transitions_that_move(states, transitions):
            by_segment.setdefault(held[transition.record_id][0]["_id"], []).append(transition)
        moved, again = 0, []
        for moving in by_segment.values():
            segment = held[moving[0].record_id][0]
            if await self._rewrite(segment, bodies[id(segment)], [(held[t.record_id][1], t) for t in moving]):
                moved += len(moving)
            else:  # changed by another writer since the read: decide its records' moves again
                records = set(segment["ids"])
                again.extend(transition for transition in transitions if transition.record_id in records)
        return moved, again

    async def _rewrite(self, segment: Document, body: Document, moves: list[tuple[int, LogTransition]]) -> bool:
        """Write the moves into the segment's body if it is still at the revision read; whether it was."""
        entries: dict[tuple, int] = {}  # (moment, state) -> its entry's position: one per segment and move
        for index, transition in moves:
            position = entries.get((transition.at, transition.state))
            if position is None:
                position = entries[(transition.at, transition.state)] = len(body["entries"])
                body["entries"].append(transition.history_entry())
            body["states"][index] = transition.state
            body["messages"][index] = transition.message
            body["histories"][index].append(position)
        revision = segment["revision"]
        changed = {"body": orjson.dumps(body).decode(), "revision": revision + 1}
        condition = {"_id": segment["_id"]}
        if self.dialect.atomic_updates:  # without (FerretDB 1.x) the lock decides, and {_id} alone uses its index
            condition["revision"] = revision
        result = await self._db[STATUS_SEGMENTS].update_one(condition, {"$set": changed})
        return result.modified_count == 1

    async def count_log_states(self, collection_id: str, transaction_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        wanted = sorted({query_text(transaction_id, "transaction id") for transaction_id in transaction_ids})
        if not wanted:
            return {}
        selector = {"ercollectionid": query_text(collection_id, "collection id"), "transactionId": {"$in": wanted}}
        with self._operation("count of status records"):
            cursor = self._db[STATUS_SEGMENTS].find(selector, {"_id": False, "transactionId": True, "body": True})
            segments = await cursor.to_list()
        counts: dict[str, Counter] = {}
        for segment in segments:
            body = _body(segment)
            counts.setdefault(segment["transactionId"], Counter()).update(
                state for state, request_object in zip(body["states"], body["request_objects"])
                if request_object != JOB)
        return {transaction_id: dict(+found) for transaction_id, found in counts.items() if +found}


def segment_documents(batch: StatusBatch, clashes: Sequence[int] = ()) -> list[Document]:
    """The batch's records but those at ``clashes`` as segment documents, in id order."""
    dropped = set(clashes)
    order = sorted((index for index in range(len(batch)) if index not in dropped), key=batch.ids.__getitem__)
    return [_segment(batch, order[start:start + SEGMENT]) for start in range(0, len(order), SEGMENT)]


def _segment(batch: StatusBatch, picked: list[int]) -> Document:
    entries: list[Document] = []
    positions: dict[int, int] = {}  # position in the batch's entries -> in the segment's
    histories = []
    for index in picked:
        for position in batch.histories[index]:
            if position not in positions:
                positions[position] = len(entries)
                entries.append(dict(batch.entries[position]))
        histories.append([positions[position] for position in batch.histories[index]])
    ids = [batch.ids[index] for index in picked]
    return {
        "ercollectionid": batch.collection_id, "transactionId": batch.transaction_id,
        "correlationId": batch.correlation_id, "requestAction": batch.request_action,
        "receivedTimestamp": batch.received, "first": ids[0], "last": ids[-1], "size": len(ids), "ids": ids,
        "entityIds": [batch.entity_ids[index] for index in picked],
        "relationshipIds": [batch.relationship_ids[index] for index in picked], "revision": 0,
        "body": orjson.dumps({"request_objects": [batch.request_objects[index] for index in picked],
                              "states": [batch.states[index] for index in picked],
                              "messages": [batch.messages[index] for index in picked],
                              "histories": histories, "entries": entries}).decode(),
    }


def _body(stored: Document) -> Document:
    return orjson.loads(stored["body"])


def _batch(stored: Document) -> StatusBatch:
    body = _body(stored)
    return StatusBatch(stored["ercollectionid"], stored["transactionId"], stored["correlationId"],
                       stored["requestAction"], stored["receivedTimestamp"], body["entries"], stored["ids"],
                       body["request_objects"], stored["entityIds"], stored["relationshipIds"], body["states"],
                       body["messages"], body["histories"])


def _matching(segment: StatusBatch, query: LogQuery) -> list[int]:
    """Indexes of the segment's records that pass the query's per-record filters (entity, relationship, state)."""
    indexes = range(len(segment))
    for filter_, column in COLUMNS.items():
        wanted = getattr(query, filter_)
        if wanted is not None:
            values = getattr(segment, column)
            indexes = [index for index in indexes if values[index] == wanted]
    return list(indexes)


def _segment_selector(query: LogQuery) -> Document:
    """The segments that may hold records matching ``query``'s filters (its paging aside)."""
    selector: Document = {"ercollectionid": query_text(query.collection_id, "collection id")}
    for field, value in (("transactionId", query.transaction_id), ("correlationId", query.correlation_id),
                         ("relationshipIds", query.relationship_id), ("entityIds", query.entity_id)):
        if value is not None:
            selector[field] = query_text(value, field)
    received: Document = {}
    if query.start_time is not None:
        received["$gte"] = query_text(query.start_time, "start time")
    if query.end_time is not None:
        # "at most end_time" as "below end_time + NUL": SecantusDB 0.7.0b3 drops the keys equal to an inclusive
        # upper bound on a compound index field that is not the last (docs/OPERATIONS.md)
        received["$lt"] = query_text(query.end_time, "end time") + "\x00"
    if received:
        selector["receivedTimestamp"] = received
    return selector


def _clashes(ids: list[str], stored: set[str]) -> list[int]:
    """Indexes of the ids stored already or repeated within ``ids`` (every occurrence after the first)."""
    seen: set[str] = set()
    clashes = []
    for index, record_id in enumerate(ids):
        if record_id in stored or record_id in seen:
            clashes.append(index)
        seen.add(record_id)
    return clashes
