"""The status records of a write: what the tracker answers for each item of a batch or a delete."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from erapi.kinds import ENTITIES, RELATIONSHIPS, Kind
from erapi.timestamps import utc_timestamp
from erapi.writes.context import BatchResult, WriteContext, tracker_message
from storage_plugins.base import Document

if TYPE_CHECKING:
    from erapi.writes.deletes import DeleteResult

def status_records(ctx: WriteContext, result: BatchResult, received_at: datetime) -> list[Document]:
    """One status record per item, in its final state, with the whole state history.

    Every item of a batch has the same moments (received, finished), so each timestamp is formatted once
    per batch and the state entries are shared by the records: nothing changes an entry once made (a
    transition appends a new one), and storage copies what it keeps.
    """
    received = utc_timestamp(received_at)
    requested, processing = state_entry("Requested", received_at), state_entry("Processing", received_at)
    finished_at = datetime.now(timezone.utc)
    finals = {True: ("Completed", state_entry("Completed", finished_at)),
              False: ("Failed", state_entry("Failed", finished_at))}
    transaction_id, correlation_id = ctx.transaction_id, ctx.correlation_id
    request_object = result.kind.label
    records = []
    for index, item in enumerate(result.results):
        final_state, final_entry = finals[item.ok]
        records.append(
            {
                "id": item_record_id(transaction_id, index),
                "transactionId": transaction_id,
                "correlationId": correlation_id,
                "requestAction": "Upsert",
                "requestObject": request_object,
                "state": final_state,
                "message": tracker_message(item),
                "serviceData": service_data(ctx.collection_id, result.kind, item.id),
                "receivedTimestamp": received,
                "stateHistory": [requested, processing, final_entry],
            }
        )
    return records


def item_record_id(transaction_id: str, index: int) -> str:
    """The status record of a transaction's item: one id per (transaction, item), so it is written once."""
    return f"{transaction_id}.{index:05d}"


def service_data(collection_id: str, kind: Kind | None, item_id: str) -> Document:
    """The record's subject: an entity, a relationship, or (kind None) the whole transaction."""
    return {
        "erCollectionId": collection_id,
        ENTITIES.id_field: item_id if kind is ENTITIES else None,
        RELATIONSHIPS.id_field: item_id if kind is RELATIONSHIPS else None,
    }


def state_entry(state: str, moment: datetime) -> Document:
    return {"timestamp": utc_timestamp(moment), "unixTimestamp": int(moment.timestamp() * 1000), "state": state}


def delete_status_records(ctx: WriteContext, result: DeleteResult, received_at: datetime) -> list[Document]:
    """One Completed record per deactivated document, all kept under the request's collection (so each
    tracker resolves with the request's ``ercollectionid``), ``requestAction`` Delete."""
    received = utc_timestamp(received_at)
    requested, processing = state_entry("Requested", received_at), state_entry("Processing", received_at)
    completed = state_entry("Completed", datetime.now(timezone.utc))
    return [
        {
            "id": item_record_id(ctx.transaction_id, index),
            "transactionId": ctx.transaction_id,
            "correlationId": ctx.correlation_id,
            "requestAction": "Delete",
            "requestObject": item.kind.label,
            "state": "Completed",
            "message": item.message,
            "serviceData": service_data(ctx.collection_id, item.kind, item.id),
            "receivedTimestamp": received,
            "stateHistory": [requested, processing, completed],  # entries shared by the records: see status_records
        }
        for index, item in enumerate(result.deactivated)
    ]
