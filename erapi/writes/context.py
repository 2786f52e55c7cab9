"""What a write is given (the context) and what it answers (one result per item)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from erapi.acl import READ, AccessControl
from erapi.catalog import Catalog
from erapi.kinds import Kind
from storage_plugins.base import Document, Storage


@dataclass(frozen=True)
class WriteContext:
    storage: Storage
    catalog: Catalog
    acl: AccessControl
    principal: str
    collection_id: str
    transaction_id: str
    correlation_id: str
    destination_access: str = READ
    create_inverse: bool = False  # also write each written relationship's inverse (createInverse=true)
    reapply: bool = False  # a job chunk claimed again: versions this transaction already wrote count as done
    # per collection written, its sequence number after the write (shared by the contexts of one request:
    # ``replace`` copies the reference); the X-ER-Sequence header of the answer
    sequences: dict[str, int] = field(default_factory=dict, compare=False)
    # the sysData of the versions 1 it writes, by (version field, time): see versioning.first_system_data (not
    # passed on by ``replace``: a context made from this one starts its own)
    first_versions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, compare=False, init=False)

    def note_sequence(self, collection_id: str, sequence: int) -> None:
        if sequence:
            self.sequences[collection_id] = max(sequence, self.sequences.get(collection_id, 0))


@dataclass(slots=True)
class ItemResult:
    id: str
    ok: bool
    message: str
    document: Document | None = None
    details: dict[str, Any] | None = None  # extra fields of the item's success entry (None: none)


@dataclass(frozen=True)
class Unchanged:
    """An upsert whose content equals the current version: nothing is written, the item still succeeds."""

    document: Document


UNCHANGED_NOTE = " (unchanged: no new version written)"


def tracker_message(item: ItemResult) -> str:
    """The item's status record message: the success entry's, and says so when nothing was written."""
    return item.message + UNCHANGED_NOTE if item.details and item.details.get("unchanged") else item.message


@dataclass
class BatchResult:
    kind: Kind
    transaction_id: str
    results: list[ItemResult] = field(default_factory=list)  # request order

    @property
    def successes(self) -> list[ItemResult]:
        return [r for r in self.results if r.ok]

    @property
    def failures(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]


def new_transaction_id() -> str:
    return str(uuid.uuid4())
