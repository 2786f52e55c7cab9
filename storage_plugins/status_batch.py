"""The status records of one transaction as one value: what the records share once, what differs per item in
columns. The write path builds one per request (a sync batch, a job, a delete) and hands it to storage whole;
a plugin may keep it as it is (see ``LogStore.insert_status_batch``), so a 100-item request stores one object,
not 100 documents. ``records()`` gives the documents the status tracker shows, exactly as a record inserted
one by one would read.

A status record is a document with exactly these fields, in this order::

    id, transactionId, correlationId, requestAction, requestObject, state, message,
    serviceData: {erCollectionId, entityId, relationshipId}, receivedTimestamp,
    stateHistory: [{timestamp, unixTimestamp, state}, ...]

Every state entry is an immutable value once made: a batch shares one entry object between the histories of
all its records (``entries``; each history is a tuple of positions in it), and a transition appends a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from storage_plugins.common import Document

RECORD_FIELDS = ("id", "transactionId", "correlationId", "requestAction", "requestObject", "state", "message",
                 "serviceData", "receivedTimestamp", "stateHistory")
SERVICE_FIELDS = ("erCollectionId", "entityId", "relationshipId")


@dataclass(slots=True)
class StatusBatch:
    """Status records of one transaction in one collection, received at one moment, by one action.

    Columns hold one value per record, in the order of ``add``. Record ids must be unique within the
    collection (storage refuses a clash with DuplicateError). A plugin that keeps the batch may turn the columns
    no transition changes (ids, request objects, entity and relationship ids) into tuples.
    """

    collection_id: str
    transaction_id: str
    correlation_id: str | None
    request_action: str
    received: str  # receivedTimestamp, ISO 8601 UTC as the service formats it
    entries: list[Document] = field(default_factory=list)  # the state entries the histories point into
    ids: list[str] = field(default_factory=list)
    request_objects: list[str] = field(default_factory=list)
    entity_ids: list[str | None] = field(default_factory=list)
    relationship_ids: list[str | None] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    histories: list[tuple[int, ...]] = field(default_factory=list)  # positions in ``entries``, oldest first

    def entry(self, entry: Document) -> int:
        """The position of a state entry for ``add``'s history (entries are shared: add each once)."""
        self.entries.append(entry)
        return len(self.entries) - 1

    def add(self, record_id: str, request_object: str, entity_id: str | None, relationship_id: str | None,
            state: str, message: str, history: tuple[int, ...]) -> None:
        self.ids.append(record_id)
        self.request_objects.append(request_object)
        self.entity_ids.append(entity_id)
        self.relationship_ids.append(relationship_id)
        self.states.append(state)
        self.messages.append(message)
        self.histories.append(history)

    def extend(self, record_ids: list[str], request_object: str, entity_ids: list[str | None],
               relationship_ids: list[str | None], states: list[str], messages: list[str],
               histories: list[tuple[int, ...]]) -> None:
        """``add`` for many records of one request object, a column at a time (columns of equal length)."""
        self.ids.extend(record_ids)
        self.request_objects.extend([request_object] * len(record_ids))
        self.entity_ids.extend(entity_ids)
        self.relationship_ids.extend(relationship_ids)
        self.states.extend(states)
        self.messages.extend(messages)
        self.histories.extend(histories)

    def __len__(self) -> int:
        return len(self.ids)

    def record(self, index: int) -> Document:
        """The status record at ``index`` as a new document (its history entries copied)."""
        entries = self.entries
        return {
            "id": self.ids[index],
            "transactionId": self.transaction_id,
            "correlationId": self.correlation_id,
            "requestAction": self.request_action,
            "requestObject": self.request_objects[index],
            "state": self.states[index],
            "message": self.messages[index],
            "serviceData": {"erCollectionId": self.collection_id, "entityId": self.entity_ids[index],
                            "relationshipId": self.relationship_ids[index]},
            "receivedTimestamp": self.received,
            "stateHistory": [dict(entries[position]) for position in self.histories[index]],
        }

    def records(self) -> Iterator[Document]:
        return (self.record(index) for index in range(len(self.ids)))

    def shared(self) -> tuple:
        """What every record of the batch has in common (``group`` puts records with equal ones together)."""
        return (self.collection_id, self.transaction_id, self.correlation_id, self.request_action, self.received)


def group(records: Iterable[Document]) -> list[StatusBatch]:
    """Status record documents as batches: consecutive records that share collection, transaction, correlation,
    action and received time go into one. ValueError for a document that is not a status record."""
    batches: list[StatusBatch] = []
    for record in records:
        _check_fields(record)
        service = record["serviceData"]
        shared = (service["erCollectionId"], record["transactionId"], record["correlationId"],
                  record["requestAction"], record["receivedTimestamp"])
        if not batches or batches[-1].shared() != shared:
            batches.append(StatusBatch(*shared))
        batch = batches[-1]
        history = tuple(batch.entry(dict(entry)) for entry in record["stateHistory"])
        batch.add(record["id"], record["requestObject"], service["entityId"], service["relationshipId"],
                  record["state"], record["message"], history)
    return batches


def _check_fields(record: Document) -> None:
    if set(record) != set(RECORD_FIELDS) or set(record["serviceData"]) != set(SERVICE_FIELDS):
        raise ValueError(f"not a status record (fields {RECORD_FIELDS}, serviceData {SERVICE_FIELDS}): "
                         f"{sorted(record)}")


def of_batches(batches: Sequence[StatusBatch]) -> list[Document]:
    """Every record of the batches, as documents."""
    return [record for batch in batches for record in batch.records()]
