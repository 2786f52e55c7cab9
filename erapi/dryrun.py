"""Dry runs (``?validateOnly=true``): the write path, unchanged, over a storage view that keeps nothing.

Running the very code of a real batch is what makes the dry-run answer the real answer: every per-item rule
is checked by the same functions, against the same stored documents. Only the two writes of a versioned
upsert are answered here instead of by the backend: every claim succeeds (no one else writes in this
imagined run) and publishing does nothing. Any other write is refused loudly, so a future write in the
path cannot slip into a dry run unnoticed.
"""

from __future__ import annotations

from typing import Sequence

from storage_plugins.base import ClaimResult, Document, WritePathView


class DryRunStorage(WritePathView):
    """Reads of the plugin pass through; the upsert's writes succeed without keeping anything."""

    purpose = "a dry run"

    async def claim_versions(self, kind: str, collection_id: str, documents: Sequence[Document]) -> ClaimResult:
        return ClaimResult(claimed=[document["id"] for document in documents])

    async def put_current(self, kind: str, collection_id: str, documents: Sequence[Document]) -> None:
        return None
