"""JobQueue: work in flight that outlives a process: the chunks of async jobs and the idempotency keys of
requests.

Both are records a holder (a worker, a first request) takes by a lease or an owner, so that exactly one holder
acts at a time in any number of processes, and gives back or finishes.
"""

from __future__ import annotations

import abc
import time
from typing import Mapping, Sequence

from storage_plugins.common import Document

IDEMPOTENCY_SWEEP_EVERY = 100  # claims of idempotency keys between two removals of expired records
# The lease fields of a chunk no worker holds (new, or handed back), and of a new chunk: every plugin writes these.
UNLEASED: Mapping[str, object] = {"state": "pending", "leaseOwner": None, "leaseExpiresAt": 0.0}
NEW_CHUNK: Mapping[str, object] = {**UNLEASED, "attempts": 0}


def leased(worker_id: str, expires_at: float) -> Document:
    """The lease fields of a chunk ``worker_id`` holds until ``expires_at`` (a claim also adds one attempt)."""
    return {"state": "processing", "leaseOwner": worker_id, "leaseExpiresAt": expires_at}


class JobQueue(abc.ABC):
    """The chunks of async jobs, in one queue for every collection, and the idempotency keys of requests."""

    # ---- chunks of async jobs -----------------------------------------------------------------------------------
    # A chunk is a document with ``id`` (unique), ``ercollectionid``, ``itemCount`` and ``createdAt``; the plugin
    # adds and manages ``state`` ("pending", "processing", "done", "failed"), ``attempts``, ``leaseOwner`` and
    # ``leaseExpiresAt`` (seconds since the epoch).

    @abc.abstractmethod
    async def enqueue_chunks(self, chunks: Sequence[Document]) -> None:
        """Store new chunks as pending. An empty batch is a no-op; DuplicateError for an existing id (whether
        the other chunks of that batch were stored is unspecified: callers enqueue fresh ids only)."""

    @abc.abstractmethod
    async def claim_chunk(self, worker_id: str, now: float, lease_seconds: float) -> Document | None:
        """Atomically take the oldest chunk (by ``createdAt``, then ``id``) that is pending, or processing with a
        lease expired at ``now``.

        The chunk becomes processing, owned by ``worker_id`` until ``now + lease_seconds``, with ``attempts``
        incremented; it is returned in that new state. None when nothing can be claimed. Two workers never
        hold the same chunk at once.
        """

    @abc.abstractmethod
    async def renew_chunk(self, chunk_id: str, worker_id: str, lease_expires_at: float) -> bool:
        """Extend the lease; False (and no change) when the worker no longer owns the processing chunk."""

    @abc.abstractmethod
    async def finish_chunk(self, chunk_id: str, worker_id: str, state: str) -> bool:
        """Mark the chunk ``done`` or ``failed`` if the worker still owns it; False otherwise."""

    @abc.abstractmethod
    async def release_chunk(self, chunk_id: str, worker_id: str) -> bool:
        """Hand an owned chunk back as pending (graceful shutdown), undoing the attempt; False if not owned."""

    @abc.abstractmethod
    async def pending_items(self, collection_id: str | None) -> int:
        """Items in pending or processing chunks, of one collection or (None) of all."""

    # ---- idempotency keys -------------------------------------------------------------------------------------
    # A record is a document with ``id`` (unique: the service derives it from the caller's key, principal and
    # collection), ``owner`` (who holds it: a fresh value per claim) and ``expiresAt`` (seconds since the epoch);
    # the service keeps its own fields in it (request fingerprint, state, lease, the answer). Records outlive
    # processes: they are how a retry reaching another process, or the same one after a restart, finds the
    # first request's answer. A record whose ``expiresAt`` has passed may be removed by the plugin at any time.

    _idempotency_claims = 0

    async def claim_idempotency_key(self, record: Document) -> Document | None:
        """Store ``record`` if no record of its ``id`` exists, and return None; otherwise store nothing and return
        the record that holds the id (whatever its age: expiry is the caller's business). Of concurrent claims
        of one id, in any number of processes, exactly one returns None. Every IDEMPOTENCY_SWEEP_EVERY claims, the
        expired records are removed first (a backend without expiry of its own, FerretDB 1.x, needs it)."""
        self._idempotency_claims += 1
        if self._idempotency_claims % IDEMPOTENCY_SWEEP_EVERY == 0:
            await self.remove_expired_idempotency_keys(time.time())
        return await self.insert_idempotency_key(record)

    @abc.abstractmethod
    async def insert_idempotency_key(self, record: Document) -> Document | None:
        """Store ``record`` if no record of its ``id`` exists, and return None; otherwise store nothing and return
        the record that holds the id. Of concurrent inserts of one id, in any number of processes, exactly one
        returns None."""

    @abc.abstractmethod
    async def remove_expired_idempotency_keys(self, now: float) -> None:
        """Remove every record whose ``expiresAt`` is before ``now`` (seconds since the epoch)."""

    @abc.abstractmethod
    async def get_idempotency_key(self, key_id: str) -> Document | None:
        """The record of ``key_id``, or None."""

    @abc.abstractmethod
    async def finish_idempotency_key(self, key_id: str, owner: str, fields: Document) -> bool:
        """Set ``fields`` on the record of ``key_id`` if ``owner`` still holds it; False (and no change) otherwise."""

    @abc.abstractmethod
    async def release_idempotency_key(self, key_id: str, owner: str) -> bool:
        """Remove the record of ``key_id`` if ``owner`` holds it, so the id can be claimed again; False otherwise."""
