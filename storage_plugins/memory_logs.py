"""The memory plugin's status records (storage_plugins/logs.py): one StatusBatch per transaction, kept as the
write path handed it over.

A 100-item request stores one object whose columns hold its records, not 100 documents: nothing is copied or
serialised when it is stored, and a store of 1,000,000 records holds about 10,000 objects the garbage collector
tracks, however many records they hold. A read builds each record it returns as a new document
(``StatusBatch.record``); a transition writes the new state and message into the columns and appends an entry.

Order. Within a batch the records are kept in id order (``insert`` sorts a batch that is not); the batches of a
collection are sorted by (receivedTimestamp, first id). Records order by (receivedTimestamp, id), so the batches
of one moment are merged by id; batches of different moments never interleave.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
from collections import Counter
from typing import Iterable, Iterator, Sequence

from sortedcontainers import SortedKeyList

from storage_plugins.common import Document, DuplicateError
from storage_plugins.logs import LogMoves, LogQuery, LogStore, LogTransition, history_entry, transitions_that_move
from storage_plugins.status_batch import StatusBatch

JOB = "Job"  # the requestObject of a job's own record, which the item counts leave out


def _order(batch: StatusBatch) -> tuple[str, str]:
    return (batch.received, batch.ids[0])


class MemoryLogs(LogStore):
    """Mixed into MemoryStorage."""

    def __init__(self) -> None:
        super().__init__()
        self._log_batches: dict[str, SortedKeyList] = {}  # collection -> its batches in record order
        self._log_by_id: dict[str, dict[str, StatusBatch]] = {}  # collection -> record id -> the batch holding it
        self._log_by_transaction: dict[tuple[str, str], list[StatusBatch]] = {}  # (collection, transaction) -> batches
        # (collection, transaction) -> state -> how many item records (not the Job record) are in it: an async job
        # asks after every chunk, and counting its 10,000 records each time cost more than applying the chunk
        self._log_states: dict[tuple[str, str], dict[str, int]] = {}

    async def insert_status_batch(self, batch: StatusBatch) -> None:
        by_id = self._log_by_id.setdefault(batch.collection_id, {})
        clashes = _clashes(batch.ids, by_id)
        kept = _frozen(_in_id_order(_without(batch, clashes) if clashes else batch))
        if len(kept):
            by_id.update(dict.fromkeys(kept.ids, kept))
            batches = self._log_batches.get(batch.collection_id)
            if batches is None:  # not setdefault: that would build a list on every call
                batches = self._log_batches[batch.collection_id] = SortedKeyList(key=_order)
            batches.add(kept)
            transaction = (batch.collection_id, batch.transaction_id)
            self._log_by_transaction.setdefault(transaction, []).append(kept)
            counts = self._log_states.setdefault(transaction, {})
            for state, count in Counter(_item_states(kept)).items():
                _count_state(counts, state, count)
        if clashes:
            raise DuplicateError(f"log records already exist: {', '.join(batch.ids[index] for index in clashes)}")

    async def _find_logs(self, query: LogQuery) -> list[Document]:
        found: list[Document] = []
        for batch, index in self._matching(query, query.after):
            found.append(batch.record(index))
            if len(found) >= query.limit:
                break
        return found

    async def count_logs(self, query: LogQuery) -> int:
        if query.relationship_id is None and query.entity_id is None and query.state is None:
            return sum(len(batch) for batch in self._batches_of(query, None))
        return sum(1 for _ in self._matching(query, None))

    async def transition_logs(self, collection_id: str, transitions: Sequence[LogTransition]) -> int:
        if isinstance(transitions, LogMoves):
            moved = self._move_columns(collection_id, transitions)
            if moved is not None:
                return moved
        by_id = self._log_by_id.get(collection_id, {})
        held = {}  # record id -> (its batch, its index there)
        for transition in transitions:
            batch = by_id.get(transition.record_id)
            if batch is not None:
                held[transition.record_id] = (batch, bisect.bisect_left(batch.ids, transition.record_id))
        moving = transitions_that_move({record_id: batch.states[index] for record_id, (batch, index) in held.items()},
                                       transitions)
        entries: dict[tuple, int] = {}  # (batch, moment, state) -> the entry's position: one per batch and move
        for transition in moving:
            batch, index = held[transition.record_id]
            if batch.request_objects[index] != JOB:
                counts = self._log_states[(collection_id, batch.transaction_id)]
                _count_state(counts, batch.states[index], -1)
                _count_state(counts, transition.state, 1)
            key = (id(batch), transition.at, transition.state)
            position = entries.get(key)
            if position is None:
                position = entries[key] = batch.entry(transition.history_entry())
            batch.states[index] = transition.state
            batch.messages[index] = transition.message
            batch.histories[index] = (*batch.histories[index], position)
        return len(moving)

    def _move_columns(self, collection_id: str, moves: LogMoves) -> int | None:
        """``transition_logs`` of a job chunk's moves, a column at a time: the records all in one batch, each
        named once (then a record moves when its state is one the moves start from, as ``transitions_that_move``
        decides); None for moves that are not like that, which the general path applies."""
        record_ids = moves.record_ids
        by_id = self._log_by_id.get(collection_id, {})
        batch = by_id.get(record_ids[0]) if record_ids else None
        if (batch is None or len(set(record_ids)) != len(record_ids)
                or not all(map(operator.is_, map(by_id.get, record_ids), itertools.repeat(batch)))):
            return None
        positions, states, messages = _positions(batch.ids, record_ids), moves.states, moves.messages
        together = _as_slice(positions)
        before = batch.states[together] if together is not None else [batch.states[position] for position in positions]
        if not set(before).issubset(moves.from_states):  # some stay: only the others move
            kept = [index for index, state in enumerate(before) if state in moves.from_states]
            positions, before = [positions[index] for index in kept], [before[index] for index in kept]
            states, messages = [states[index] for index in kept], [messages[index] for index in kept]
            together = _as_slice(positions)
        entries = {state: batch.entry(history_entry(state, moves.at)) for state in dict.fromkeys(states)}
        _write_moves(batch, positions, together, states, messages, entries)
        self._count_moves(collection_id, batch, positions, before, states)
        return len(positions)

    def _count_moves(self, collection_id: str, batch: StatusBatch, positions: list[int], before: list[str],
                     after: Sequence[str]) -> None:
        """The batch's transaction's counts per state, after its records at ``positions`` moved."""
        if JOB in batch.request_objects:  # a job's own record is not an item: not counted
            items = [index for index, position in enumerate(positions) if batch.request_objects[position] != JOB]
            before, after = [before[index] for index in items], [after[index] for index in items]
        counts = self._log_states[(collection_id, batch.transaction_id)]
        for state, count in Counter(before).items():
            _count_state(counts, state, -count)
        for state, count in Counter(after).items():
            _count_state(counts, state, count)

    async def count_log_states(self, collection_id: str, transaction_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        found = ((transaction_id, self._log_states.get((collection_id, transaction_id)))
                 for transaction_id in set(transaction_ids))
        return {transaction_id: dict(counts) for transaction_id, counts in found if counts}

    def _matching(self, query: LogQuery, after: tuple[str, str] | None) -> Iterator[tuple[StatusBatch, int]]:
        """(batch, index) of each record matching ``query`` after ``after``, in (receivedTimestamp, id) order."""
        for batch, index in _in_record_order(self._batches_of(query, after), after):
            if ((query.relationship_id is None or batch.relationship_ids[index] == query.relationship_id)
                    and (query.entity_id is None or batch.entity_ids[index] == query.entity_id)
                    and (query.state is None or batch.states[index] == query.state)):
                yield batch, index

    def _batches_of(self, query: LogQuery, after: tuple[str, str] | None) -> Iterator[StatusBatch]:
        """The batches that may hold matching records, in order; the filters on whole batches applied."""
        lowest = max(after[0] if after else "", query.start_time or "")
        if query.transaction_id is not None:
            candidates = sorted(self._log_by_transaction.get((query.collection_id, query.transaction_id), ()), key=_order)
        else:
            batches = self._log_batches.get(query.collection_id)
            candidates = batches.irange_key(min_key=(lowest, "")) if batches is not None else ()
        for batch in candidates:  # consumed before any other call can change the lists (no await in between)
            if batch.received < lowest:
                continue
            if query.end_time and batch.received > query.end_time:
                return
            if query.correlation_id is None or batch.correlation_id == query.correlation_id:
                yield batch


def _in_record_order(batches: Iterable[StatusBatch], after: tuple[str, str] | None
                     ) -> Iterator[tuple[StatusBatch, int]]:
    """(batch, index) of every record strictly after ``after``, from batches sorted by (received, first id)."""
    moment: list[StatusBatch] = []  # consecutive batches of one receivedTimestamp, merged by id
    for batch in batches:
        if moment and batch.received != moment[0].received:
            yield from _merged(moment, after)
            moment = []
        moment.append(batch)
    if moment:
        yield from _merged(moment, after)


def _merged(batches: list[StatusBatch], after: tuple[str, str] | None) -> Iterator[tuple[StatusBatch, int]]:
    def following(batch: StatusBatch) -> Iterator[tuple[str, StatusBatch, int]]:
        start = bisect.bisect_right(batch.ids, after[1]) if after and batch.received == after[0] else 0
        return ((batch.ids[index], batch, index) for index in range(start, len(batch)))

    if len(batches) == 1:  # the usual case: one transaction per moment
        return ((batch, index) for _, batch, index in following(batches[0]))
    merged = heapq.merge(*(following(batch) for batch in batches), key=lambda entry: entry[0])
    return ((batch, index) for _, batch, index in merged)


def _write_moves(batch: StatusBatch, positions: Sequence[int], together: slice | None, states: Sequence[str],
                 messages: Sequence[str], entries: dict[str, int]) -> None:
    """Each record at ``positions`` to its state and message, its history one entry longer: by slices when the
    positions follow each other (``together``: the usual chunk), else one record at a time."""
    if together is not None:
        batch.states[together] = states
        batch.messages[together] = messages
        # the records of a chunk share a few histories: each longer one made once, and shared in turn
        pairs = list(zip(batch.histories[together], states))
        longer = {pair: (*pair[0], entries[pair[1]]) for pair in set(pairs)}
        batch.histories[together] = list(map(longer.__getitem__, pairs))
        return
    for position, state, message in zip(positions, states, messages):
        batch.states[position] = state
        batch.messages[position] = message
        batch.histories[position] = (*batch.histories[position], entries[state])


def _as_slice(positions: Sequence[int]) -> slice | None:
    """The positions as a slice when they follow each other, in order and each once."""
    if not positions or positions[-1] - positions[0] != len(positions) - 1:
        return None
    if type(positions) is not range and positions != sorted(set(positions)):
        return None
    return slice(positions[0], positions[-1] + 1)


def _positions(ids: Sequence[str], record_ids: Sequence[str]) -> list[int] | range:
    """Where each of ``record_ids`` is in ``ids`` (sorted, holding them all): a range when they follow each other
    there (a job chunk's records), or when all but the first do (the chunk's records after the job's own), else
    each found by bisection."""
    following = _following(ids, record_ids)
    if following is not None:
        return following
    following = _following(ids, record_ids[1:])
    if following is not None:
        return [bisect.bisect_left(ids, record_ids[0]), *following]
    return [bisect.bisect_left(ids, record_id) for record_id in record_ids]


def _following(ids: Sequence[str], record_ids: Sequence[str]) -> range | None:
    """The positions of ``record_ids`` in ``ids`` when they follow each other there (compared at C speed)."""
    if not record_ids:
        return None
    start = bisect.bisect_left(ids, record_ids[0])
    return range(start, start + len(record_ids)) if ids[start:start + len(record_ids)] == tuple(record_ids) else None


def _frozen(batch: StatusBatch) -> StatusBatch:
    """The batch with the columns no transition changes as tuples: CPython's collector stops tracking a tuple of
    strings, where a list stays tracked (about 40,000 objects fewer to walk at 1,000,000 stored records)."""
    batch.ids, batch.request_objects = tuple(batch.ids), tuple(batch.request_objects)
    batch.entity_ids, batch.relationship_ids = tuple(batch.entity_ids), tuple(batch.relationship_ids)
    return batch


def _item_states(batch: StatusBatch) -> list[str]:
    """The states of the batch's item records (a job's own record left out)."""
    if JOB not in batch.request_objects:
        return batch.states
    return [state for state, request_object in zip(batch.states, batch.request_objects) if request_object != JOB]


def _in_id_order(batch: StatusBatch) -> StatusBatch:
    ids = batch.ids
    if ids == sorted(ids):  # the usual case: the service numbers a transaction's records in order
        return batch
    return _picked(batch, sorted(range(len(ids)), key=ids.__getitem__))


def _clashes(ids: list[str], stored: dict[str, StatusBatch]) -> list[int]:
    """Indexes of the ids stored already or repeated within ``ids`` (every occurrence after the first)."""
    if stored.keys().isdisjoint(ids) and len(set(ids)) == len(ids):
        return []  # the usual case, checked at C speed
    clashes = [index for index, record_id in enumerate(ids) if record_id in stored]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for index, record_id in enumerate(ids):
            if record_id in seen and record_id not in stored:
                clashes.append(index)
            seen.add(record_id)
    return sorted(clashes)


def _without(batch: StatusBatch, clashes: list[int]) -> StatusBatch:
    dropped = set(clashes)
    return _picked(batch, [index for index in range(len(batch)) if index not in dropped])


def _picked(batch: StatusBatch, indexes: list[int]) -> StatusBatch:
    """A batch of the records at ``indexes``, in that order."""
    picked = StatusBatch(batch.collection_id, batch.transaction_id, batch.correlation_id, batch.request_action,
                         batch.received, batch.entries)
    for index in indexes:
        picked.add(batch.ids[index], batch.request_objects[index], batch.entity_ids[index],
                   batch.relationship_ids[index], batch.states[index], batch.messages[index], batch.histories[index])
    return picked


def _count_state(counts: dict[str, int], state: str, change: int) -> None:
    counts[state] = counts.get(state, 0) + change
    if not counts[state]:
        del counts[state]
