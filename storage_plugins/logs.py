"""LogStore: the status records of transactions, one per item and one per job, each with its state history.

A record is written once (``insert_status_batch``, a transaction's records at once) and then only moved from state to state (``transition_logs``); the
status tracker reads it by its filters (``find_logs``, ``count_logs``) and an async job's progress by the count
of its item records per state (``count_log_states``).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, NamedTuple, Sequence

from storage_plugins import status_batch
from storage_plugins.common import Document, DuplicateError, Rows
from storage_plugins.status_batch import StatusBatch

PAGED = {"find_logs": "_find_logs"}  # the paged read, by the name of its primitive (storage_plugins/documents.py)


@dataclass(frozen=True)
class LogQuery:
    """Filters of the status tracker. Every filter given must match; ``None`` means "any".

    Results are ordered by (``receivedTimestamp``, ``id``) ascending; ``after`` is the sort key of the last
    record of the previous page, and only records strictly after it are returned.
    """

    collection_id: str
    transaction_id: str | None = None
    relationship_id: str | None = None
    entity_id: str | None = None
    correlation_id: str | None = None
    start_time: str | None = None  # inclusive, compared with receivedTimestamp (ISO 8601, UTC, same format)
    end_time: str | None = None  # inclusive
    state: str | None = None  # the record's current state; narrows the other filters
    after: tuple[str, str] | None = None
    limit: int = 100


class LogTransition(NamedTuple):
    """Move one status record to ``state`` if (and only if) its current state is one of ``from_states``.

    The move sets ``state`` and ``message`` and appends ``{"timestamp", "unixTimestamp", "state"}`` to
    ``stateHistory``. Because a final state is never in ``from_states`` by default, applying the same
    transition twice changes nothing the second time. Immutable; a NamedTuple rather than a frozen dataclass
    because an async job makes two per item, and a frozen dataclass takes twice as long to build.
    """

    record_id: str
    state: str
    message: str
    at: datetime
    from_states: tuple[str, ...] = ("Requested", "Processing")

    def history_entry(self) -> Document:
        return history_entry(self.state, self.at)


def history_entry(state: str, at: datetime) -> Document:
    """The ``stateHistory`` entry of a move to ``state`` at ``at``."""
    return {
        "timestamp": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "unixTimestamp": int(at.timestamp() * 1000),
        "state": state,
    }


class LogMoves(Rows[LogTransition]):
    """Many records moved at one moment from the same states: the columns of their transitions (one record id,
    state and message per record). As a sequence, each is a ``LogTransition``; a plugin may read the columns
    instead (the memory plugin moves a job chunk's records a column at a time), with the same outcome."""

    __slots__ = ("record_ids", "states", "messages", "at", "from_states")

    def __init__(self, record_ids: Sequence[str], states: Sequence[str], messages: Sequence[str], at: datetime,
                 from_states: tuple[str, ...] = LogTransition._field_defaults["from_states"]) -> None:
        if not len(record_ids) == len(states) == len(messages):
            raise ValueError("LogMoves: one state and one message per record id")
        self.record_ids, self.states, self.messages = record_ids, states, messages
        self.at, self.from_states = at, from_states

    def __len__(self) -> int:
        return len(self.record_ids)

    def _row(self, index: int) -> LogTransition:
        return LogTransition(self.record_ids[index], self.states[index], self.messages[index], self.at,
                             self.from_states)


def transitions_that_move(states: dict[str, str], transitions: Iterable[LogTransition]) -> list[LogTransition]:
    """*Only move forward*, the status records' rule: the transitions that move their record, taken in order, each
    from its record's state after the ones before it. ``states`` holds each record's state by id (a record absent
    from it moves nothing) and is updated to the states after the moves."""
    moving = []
    for transition in transitions:
        state = states.get(transition.record_id)
        if state is not None and state in transition.from_states:
            states[transition.record_id] = transition.state
            moving.append(transition)
    return moving


class LogStore(abc.ABC):
    """Status records, kept per collection; a collection's records are told apart from anything else the
    plugin keeps by the methods that write them, never by anything a client sends."""

    @abc.abstractmethod
    async def insert_status_batch(self, batch: StatusBatch) -> None:
        """Append the status records of one transaction (storage_plugins/status_batch.py), each ``id`` unique
        within ``batch.collection_id``. How they are stored is the plugin's (one object for the batch, or one
        document per record); what ``find_logs`` returns is not.

        The plugin takes ownership of ``batch``: the caller must not change it afterwards, and the plugin may
        keep it (and change it in place for later transitions). An empty batch is a no-op. Raises DuplicateError
        when a record id already exists; records of the batch without a clash are still written.
        """

    async def insert_logs(self, records: Sequence[Document]) -> None:
        """Append status records given as documents (status_batch.RECORD_FIELDS): ``insert_status_batch`` for
        each run of records that share collection, transaction, correlation, action and received time. The
        documents are copied, not kept. DuplicateError, after writing every record without a clash."""
        clashes = []
        for batch in status_batch.group(records):
            try:
                await self.insert_status_batch(batch)
            except DuplicateError as error:
                clashes.append(str(error))
        if clashes:
            raise DuplicateError("; ".join(clashes))

    async def find_logs(self, query: LogQuery) -> list[Document]:
        """Status records matching ``query``, at most ``query.limit``, in (receivedTimestamp, id) order."""
        if query.limit <= 0:
            return []
        return await self._find_logs(query)

    @abc.abstractmethod
    async def _find_logs(self, query: LogQuery) -> list[Document]:
        """``find_logs``'s page, ``query.limit >= 1`` (a paged read: storage_plugins/documents.py)."""

    @abc.abstractmethod
    async def count_logs(self, query: LogQuery) -> int:
        """How many status records match ``query``'s filters; ``after`` and ``limit`` are ignored."""

    @abc.abstractmethod
    async def transition_logs(self, collection_id: str, transitions: Sequence[LogTransition]) -> int:
        """Apply each transition to the status record of that id in the collection, in order; return how many
        moved.

        A record that is absent, or whose state (after the transitions before it) is not in the transition's
        ``from_states``, is left alone: ``transitions_that_move`` decides, or the server by the same rule.
        """

    @abc.abstractmethod
    async def count_log_states(self, collection_id: str, transaction_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """For each of the transactions, how many of its item records (``requestObject`` other than ``Job``)
        are in each state, keyed by transaction id; a transaction without item records is absent. One call for
        a whole page of job records, however many it holds; no ids, no result."""
