"""Asynchronous batch writes: a job is stored as chunks of ``jobs.chunk_size`` items (bigger for a big job) that
workers apply.

Delivery is at least once, application exactly once. A worker claims a chunk with a lease and renews it
while it works; when a worker dies its lease expires and another worker claims the chunk again. Applying
a chunk twice is harmless: versions already written by this transaction are found in the history and
reported instead of written again, and a status record only moves forward from a non-final state, so no
item is completed twice. A chunk claimed more than ``max_attempts`` times fails with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import structlog

from erapi.acl import WRITE, AccessControl
from erapi.background import BackgroundWorker
from erapi.catalog import Catalog
from erapi.clock import Clock
from erapi.config import JobsConfig
from erapi.errors import TooManyRequests
from erapi.kinds import BY_NAME, ENTITIES, RELATIONSHIPS, Kind
from erapi.logs import audit, log_transaction
from erapi.timestamps import utc_timestamp
from erapi.writes.context import BatchResult, ItemResult, WriteContext, tracker_message
from erapi.writes.entities import upsert_entities
from erapi.writes.relationships import upsert_relationships
from erapi.writes.status_records import (
    add_item_record, add_item_records, new_status_batch, record_ids_of, state_entry,
)
from erapi.writes.versioning import first_occurrences
from storage_plugins.base import Document, LogMoves, LogTransition, Storage
from storage_plugins.status_batch import StatusBatch

UPSERTS = {ENTITIES.name: upsert_entities, RELATIONSHIPS.name: upsert_relationships}  # by a chunk's "kind"
FINAL_STATES = ("Completed", "Failed")
# A job of more than CHUNKS_OF_A_BIG_JOB chunks of jobs.chunk_size has about that many, of up to BIGGEST_CHUNK items
# (chunk_size_of): each chunk costs a claim, two storage calls moving its status records, a count of the job's
# records and the job record's move, whatever its size. Up to 500 items, a chunk of the memory plugin holds the
# event loop for 20-30 ms (EBU3B's relationships).
CHUNKS_OF_A_BIG_JOB, BIGGEST_CHUNK = 20, 500
logger = structlog.get_logger("erapi.jobs")


class Backpressure(TooManyRequests):
    """Too many items are waiting; the client should retry after ``retry_after`` seconds."""


def job_record_id(transaction_id: str) -> str:
    # the bare transaction id sorts before every item record of the transaction: the job comes first
    return transaction_id


async def accept_job(ctx: WriteContext, kind: Kind, items: list[dict[str, Any]], received_at: datetime,
                     settings: JobsConfig) -> None:
    """Store the job (status records first, then its chunks); raise Backpressure when the queue is full."""
    await _check_backpressure(ctx.storage, ctx.collection_id, len(items), settings)
    failures: dict[int, str] = {}
    unique = first_occurrences(items, kind, failures)
    received = utc_timestamp(received_at)
    chunks = [
        {
            "id": f"{ctx.transaction_id}.c{number:04d}",
            "ercollectionid": ctx.collection_id,
            "transactionId": ctx.transaction_id,
            "correlationId": ctx.correlation_id,
            "kind": kind.name,
            "principal": ctx.principal,
            "destinationAccess": ctx.destination_access,
            "indexes": group,
            "items": [items[i] for i in group],
            "itemCount": len(group),
            "createdAt": received,
        }
        for number, group in enumerate(_groups(unique, chunk_size_of(len(unique), settings.chunk_size)))
    ]
    await ctx.storage.insert_status_batch(_job_status_records(ctx, kind, items, failures, received_at))
    await ctx.storage.enqueue_chunks(chunks)
    audit("job accepted", transaction_id=ctx.transaction_id, ercollectionid=ctx.collection_id,
          principal=ctx.principal, kind=kind.name, items=len(items), chunks=len(chunks))


async def _check_backpressure(storage: Storage, collection_id: str, count: int, settings: JobsConfig) -> None:
    in_collection = await storage.pending_items(collection_id)
    if in_collection + count > settings.max_pending_items_per_collection:
        raise Backpressure(
            f"ERCollection {collection_id} has {in_collection} items waiting; the bound is "
            f"{settings.max_pending_items_per_collection}", settings.retry_after_seconds)
    in_total = await storage.pending_items(None)
    if in_total + count > settings.max_pending_items_total:
        raise Backpressure(
            f"{in_total} items are waiting; the bound is {settings.max_pending_items_total}",
            settings.retry_after_seconds)


def chunk_size_of(items: int, chunk_size: int) -> int:
    """Items per chunk of a job of ``items``: ``chunk_size``, or for a big job a CHUNKS_OF_A_BIG_JOB-th of it, up
    to BIGGEST_CHUNK."""
    return max(chunk_size, min(BIGGEST_CHUNK, -(-items // CHUNKS_OF_A_BIG_JOB)))


def _groups(indexes: list[int], size: int) -> list[list[int]]:
    return [indexes[start:start + size] for start in range(0, len(indexes), size)]


def _job_status_records(ctx: WriteContext, kind: Kind, items: list[dict[str, Any]], failures: dict[int, str],
                        received_at: datetime) -> StatusBatch:
    """The job's own record and one per item, just accepted: Requested, or Failed for a repeated id."""
    batch = new_status_batch(ctx, "Upsert", received_at)
    requested = (batch.entry(state_entry("Requested", received_at)),)
    failed = (*requested, batch.entry(state_entry("Failed", received_at)))
    batch.add(job_record_id(ctx.transaction_id), "Job", None, None, "Requested",
              f"Job of {kind.label} upserts accepted", requested)
    start = 0  # the records of the items between two failures go in at once, a column at a time
    for failure in [*sorted(failures), len(items)]:
        count = failure - start
        add_item_records(batch, kind, start, [item["id"] for item in items[start:failure]], ["Requested"] * count,
                         ["Waiting to be processed"] * count, [requested] * count)
        if failure < len(items):
            add_item_record(batch, kind, failure, items[failure]["id"], "Failed", failures[failure], failed)
        start = failure + 1
    return batch


async def job_counts(storage: Storage, collection_id: str, transaction_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Counts of each job's items by outcome, derived from their status records (always exact), keyed by
    transaction id; one storage call for any number of jobs."""
    wanted = set(transaction_ids)
    states = await storage.count_log_states(collection_id, wanted) if wanted else {}
    return {transaction_id: _outcomes(states.get(transaction_id, {})) for transaction_id in wanted}


def _outcomes(states: dict[str, int]) -> dict[str, int]:
    done, failed = states.get("Completed", 0), states.get("Failed", 0)
    pending = states.get("Requested", 0) + states.get("Processing", 0)
    return {"total": done + failed + pending, "done": done, "failed": failed, "pending": pending}


@dataclass
class Services:
    storage: Storage
    catalog: Catalog
    acl: AccessControl


class JobWorker(BackgroundWorker):
    """Claims chunks from the storage plugin's queue and applies them, one at a time, until stopped; ``stop``
    lets the current chunk finish within its timeout, else cancels it, which releases the chunk for others."""

    failure = "job worker iteration failed"

    def __init__(self, services: Services, settings: JobsConfig, worker_id: str | None = None,
                 clock: Clock = time.time):
        super().__init__(worker_id or f"worker-{uuid.uuid4()}", settings.poll_interval_seconds, logger)
        self.services = services
        self.settings = settings
        self.clock = clock  # seconds since the epoch: leases are compared across processes

    async def step(self) -> bool:
        return await self.run_once()

    async def run_once(self) -> bool:
        """Claim and apply one chunk; False when the queue had nothing to claim."""
        storage = self.services.storage
        chunk = await storage.claim_chunk(self.worker_id, self.clock(), self.settings.lease_seconds)
        if chunk is None:
            return False
        renewal = asyncio.create_task(self._renew(chunk["id"]))
        try:
            with structlog.contextvars.bound_contextvars(**_job_context(chunk)):
                await self._apply(chunk)
        except asyncio.CancelledError:
            await storage.release_chunk(chunk["id"], self.worker_id)
            raise
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
        return True

    async def _renew(self, chunk_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            await self.services.storage.renew_chunk(
                chunk_id, self.worker_id, self.clock() + self.settings.lease_seconds)

    async def _apply(self, chunk: Document) -> None:
        storage = self.services.storage
        transaction_id, collection_id = chunk["transactionId"], chunk["ercollectionid"]
        now = datetime.now(timezone.utc)
        record_ids = record_ids_of(transaction_id, chunk["indexes"])  # for both moves
        # the job's record and the chunk's item records, in one call
        await storage.transition_logs(collection_id, LogMoves(
            [job_record_id(transaction_id), *record_ids], ["Processing"] * (len(record_ids) + 1),
            ["Job is being processed", *["Processing"] * len(record_ids)], now, from_states=("Requested",)))
        given_up = None
        if chunk["attempts"] > self.settings.max_attempts:
            given_up = f"Gave up after {self.settings.max_attempts} attempts to apply the item"
            logger.warning("job chunk given up", reason=given_up)
            result = _failed_chunk(chunk, given_up)
        else:
            result = await self._upsert(chunk)
        finished = datetime.now(timezone.utc)
        states = ["Completed" if item.ok else "Failed" for item in result.results]
        messages = [tracker_message(item) for item in result.results]
        await storage.transition_logs(collection_id, LogMoves(record_ids, states, messages, finished))
        await storage.finish_chunk(chunk["id"], self.worker_id, "done" if given_up is None else "failed")
        log_transaction(result)
        counts = (await job_counts(storage, collection_id, [transaction_id]))[transaction_id]
        if counts["pending"] == 0:
            completed = await storage.transition_logs(collection_id, [LogTransition(
                job_record_id(transaction_id), "Completed",
                f"Job finished: {counts['done']} done, {counts['failed']} failed", finished)])
            if completed:  # the worker that moved the job record says so; another one finishing too does not
                logger.info("job done", items=counts["total"], done=counts["done"], failed=counts["failed"])

    async def _upsert(self, chunk: Document) -> BatchResult:
        services = self.services
        ctx = WriteContext(
            storage=services.storage,
            catalog=services.catalog,
            acl=services.acl,
            principal=chunk["principal"],
            collection_id=chunk["ercollectionid"],
            transaction_id=chunk["transactionId"],
            correlation_id=chunk["correlationId"],
            destination_access=chunk["destinationAccess"],
            reapply=True,
        )
        # rights are checked again when the job runs: a grant revoked since acceptance stops it
        if WRITE not in await services.acl.access(ctx.collection_id, ctx.principal):
            return _failed_chunk(chunk, f"The caller no longer has write access to ERCollection {ctx.collection_id}")
        return await UPSERTS[chunk["kind"]](ctx, chunk["items"])


def _job_context(chunk: Document) -> dict[str, Any]:
    """What every log line about the chunk carries: the job's transaction, collection and principal."""
    return {"transaction_id": chunk["transactionId"], "ercollectionid": chunk["ercollectionid"],
            "principal": chunk["principal"], "chunk": chunk["id"], "attempt": chunk["attempts"]}


def _failed_chunk(chunk: Document, message: str) -> BatchResult:
    result = BatchResult(kind=BY_NAME[chunk["kind"]], transaction_id=chunk["transactionId"])
    result.results = [ItemResult(id=item["id"], ok=False, message=message) for item in chunk["items"]]
    return result
