"""What the four storage interfaces share: the document type and the errors a plugin raises."""

from __future__ import annotations

from typing import Any, Sequence, TypeVar

Document = dict[str, Any]
Row = TypeVar("Row")


class Rows(Sequence[Row]):
    """Columns read as a sequence: each row (``_row``) a new value, a slice a list of them."""

    __slots__ = ()

    def __getitem__(self, index):  # an int (a slice: a list of rows)
        if isinstance(index, slice):
            return [self._row(position) for position in range(*index.indices(len(self)))]
        return self._row(index)

    def _row(self, index: int) -> Row:
        raise NotImplementedError


def query_text(value: Any, what: str) -> str:
    """``value``, which a database filter is about to hold, if it is a string: a dict or a regex there would
    become a query operator from a client."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {type(value).__name__}")
    return value


class StorageError(Exception):
    """The storage backend failed or is unreachable; the request may be retried later (HTTP 503)."""


class DuplicateError(StorageError):
    """A document with the same unique key already exists."""


class AtomicConflict(Exception):
    """A concurrent writer took a version an all-or-nothing batch needed; nothing of the batch was kept."""


