"""All-or-nothing batches (``?atomic=true``): every item is written, or none is and the 207 says why.

The batch runs through the usual write path over the storage plugin's atomic view (a multi-document
transaction on MongoDB, a staged step on the memory plugin). If any item fails, the view is left with an
exception, so nothing it wrote is kept, and every item that would have succeeded is reported as not written.

The changes of a kept batch (the change feed) are recorded right after it is kept: the view cannot record
them inside the batch, since numbering changes must not wait for, or be undone with, a transaction. A process
killed between the two leaves that batch's versions out of the feed (docs/API.md, change feed).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Awaitable, Callable

from erapi.kinds import Kind
from erapi.writes.context import BatchResult, ItemResult, WriteContext
from storage_plugins.base import AtomicConflict

Upsert = Callable[[WriteContext, list], Awaitable[BatchResult]]


class _RolledBack(Exception):
    """Leaves the atomic view so that nothing of a batch with a failed item is kept."""

    def __init__(self, result: BatchResult):
        super().__init__("an item of the atomic batch failed")
        self.result = result


def all_or_nothing(kind: Kind, upsert: Upsert) -> Upsert:
    """``upsert`` (of ``kind``), applied atomically."""

    async def upsert_atomically(ctx: WriteContext, items: list[dict[str, Any]]) -> BatchResult:
        try:
            async with ctx.storage.atomic() as view:
                result = await upsert(replace(ctx, storage=view), items)
                if result.failures:
                    raise _RolledBack(result)
            for collection_id, changes in view.deferred_changes:
                ctx.note_sequence(collection_id, await ctx.storage.record_changes(collection_id, changes))
        except _RolledBack as rolled_back:
            return nothing_written(rolled_back.result)
        except AtomicConflict as conflict:
            message = f"Not written: the batch is atomic (atomic=true) and lost a race: {conflict}; retry the request"
            return BatchResult(kind, ctx.transaction_id, [ItemResult(item["id"], False, message) for item in items])
        return result

    return upsert_atomically


def nothing_written(result: BatchResult) -> BatchResult:
    """The answer of an atomic batch with failed items: they keep their reasons, the others say why not."""
    failed = len(result.failures)
    message = f"Not written: the batch is atomic (atomic=true) and {failed} of its items failed"
    return replace(result, results=[
        item if not item.ok else ItemResult(item.id, False, message) for item in result.results])
