"""The status records of a write: what the tracker answers for each item of a batch, a job or a delete.

A write's records go to storage as one StatusBatch (storage_plugins/status_batch.py): what they share once, what
differs per item in columns, and each state entry made once and shared by every history that holds it (nothing
changes an entry once made: a transition appends a new one). Storage takes the batch over.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

from erapi.config import JobsConfig
from erapi.kinds import ENTITIES, Kind
from erapi.timestamps import utc_timestamp
from erapi.writes.context import BatchResult, WriteContext, tracker_message
from storage_plugins.base import Document
from storage_plugins.status_batch import StatusBatch

if TYPE_CHECKING:
    from erapi.writes.deletes import DeleteResult


def status_records(ctx: WriteContext, result: BatchResult, received_at: datetime) -> StatusBatch:
    """One status record per item, in its final state, with the whole state history."""
    batch = new_status_batch(ctx, "Upsert", received_at)
    started = (batch.entry(state_entry("Requested", received_at)), batch.entry(state_entry("Processing", received_at)))
    finished_at = datetime.now(timezone.utc)
    completed = (*started, batch.entry(state_entry("Completed", finished_at)))
    failed = (*started, batch.entry(state_entry("Failed", finished_at)))
    items = result.results
    count = len(items)
    messages = [item.message if item.details is None else tracker_message(item) for item in items]
    if all(item.ok for item in items):  # the usual case: the columns of states and histories at C speed
        states, histories = ["Completed"] * count, [completed] * count
    else:
        states = ["Completed" if item.ok else "Failed" for item in items]
        histories = [completed if item.ok else failed for item in items]
    add_item_records(batch, result.kind, 0, [item.id for item in items], states, messages, histories)
    return batch


def delete_status_records(ctx: WriteContext, result: DeleteResult, received_at: datetime) -> StatusBatch:
    """One Completed record per deactivated document, all kept under the request's collection (so each
    tracker resolves with the request's ``ercollectionid``), ``requestAction`` Delete."""
    batch = new_status_batch(ctx, "Delete", received_at)
    history = (batch.entry(state_entry("Requested", received_at)), batch.entry(state_entry("Processing", received_at)),
               batch.entry(state_entry("Completed", datetime.now(timezone.utc))))
    for index, item in enumerate(result.deactivated):
        add_item_record(batch, item.kind, index, item.id, "Completed", item.message, history)
    return batch


def new_status_batch(ctx: WriteContext, action: str, received_at: datetime) -> StatusBatch:
    """An empty batch for the records of this transaction, received at ``received_at``."""
    return StatusBatch(ctx.collection_id, ctx.transaction_id, ctx.correlation_id, action, utc_timestamp(received_at))


def add_item_record(batch: StatusBatch, kind: Kind, index: int, item_id: str, state: str, message: str,
                    history: tuple[int, ...]) -> None:
    """The record of the transaction's item at ``index``: an entity or a relationship, as ``kind`` says."""
    add_item_records(batch, kind, index, [item_id], [state], [message], [history])


def add_item_records(batch: StatusBatch, kind: Kind, first: int, item_ids: list[str], states: list[str],
                     messages: list[str], histories: list[tuple[int, ...]]) -> None:
    """The records of the transaction's items ``first``, ``first + 1``, ..., a column at a time."""
    absent = [None] * len(item_ids)
    record_ids = item_record_ids(batch.transaction_id, first, len(item_ids))
    entity = kind is ENTITIES
    batch.extend(record_ids, kind.label, item_ids if entity else absent, absent if entity else item_ids, states,
                 messages, histories)


def item_record_id(transaction_id: str, index: int) -> str:
    """The status record of a transaction's item: one id per (transaction, item), so it is written once."""
    return f"{transaction_id}.{index:05d}"


# the ends of item record ids (".00000", ".00001", ...), made once each as far as writes have needed them, up to
# the items of a default-sized job: formatting the index is most of the cost of an id
_SUFFIXES: list[str] = []
MOST_SUFFIXES = JobsConfig.max_items


def item_record_ids(transaction_id: str, first: int, count: int) -> list[str]:
    """``item_record_id`` of the items ``first`` to ``first + count - 1``."""
    return record_ids_of(transaction_id, range(first, first + count))


def record_ids_of(transaction_id: str, indexes: Sequence[int]) -> list[str]:
    """``item_record_id`` of the transaction's items at ``indexes`` (ascending)."""
    if not indexes or indexes[-1] >= MOST_SUFFIXES:
        return [item_record_id(transaction_id, index) for index in indexes]
    suffixes = _suffixes_to(indexes[-1])
    if indexes[-1] - indexes[0] == len(indexes) - 1:  # the usual case: items that follow each other
        return [transaction_id + suffix for suffix in suffixes[indexes[0]:indexes[-1] + 1]]
    return [transaction_id + suffixes[index] for index in indexes]


def _suffixes_to(last: int) -> list[str]:
    """The suffixes up to index ``last`` at least; a longer list replaces the shorter whole (never extended in
    place: a thread reading it meanwhile sees one or the other)."""
    global _SUFFIXES
    suffixes = _SUFFIXES
    if last >= len(suffixes):
        suffixes = _SUFFIXES = [*suffixes, *(item_record_id("", index) for index in range(len(suffixes), last + 1))]
    return suffixes


def state_entry(state: str, moment: datetime) -> Document:
    return {"timestamp": utc_timestamp(moment), "unixTimestamp": int(moment.timestamp() * 1000), "state": state}
