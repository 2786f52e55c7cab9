"""The HTTP side of a batch write, shared by entities and relationships: checks, upsert, log, 207."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timezone
from typing import Awaitable, Callable

import orjson
import structlog
from aiohttp import web

from erapi.acl import WRITE
from erapi.atomic import all_or_nothing, nothing_written
from erapi.consistency import with_sequences
from erapi.dryrun import DryRunStorage
from erapi.errors import InvalidRequest, PayloadTooLarge
from erapi.idempotency import read_idempotency_key, request_fingerprint
from erapi.jobs import accept_job
from erapi.keys import acl_key, catalog_key, config_key, idempotency_key, job_workers_key, storage_key
from erapi.kinds import RELATIONSHIPS, Kind
from erapi.logs import log_transaction
from erapi.preconditions import apply_conditional_headers, etag, raise_if_precondition_failed
from erapi.web import (
    WRITE_SCOPE,
    async_requested,
    authorize,
    base_url,
    boolean_query,
    collection_header,
    envelope,
    read_json,
    require_access,
    Trackers,
    all_unreserved,
    validate,
)
from erapi.writes.context import BatchResult, ItemResult, WriteContext, new_transaction_id
from erapi.writes.status_records import status_records

Upsert = Callable[[WriteContext, list], Awaitable[BatchResult]]


async def handle_batch_write(request: web.Request, kind: Kind, upsert: Upsert) -> web.Response:
    received_at = datetime.now(timezone.utc)
    principal = await authorize(request, WRITE_SCOPE)
    collection_id = collection_header(request)
    run_async = async_requested(request)
    create_inverse = kind is RELATIONSHIPS and boolean_query(request, "createInverse")
    if run_async and create_inverse:
        raise InvalidRequest("createInverse=true is available on synchronous requests only (async: false)")
    validate_only = boolean_query(request, "validateOnly")
    atomic = boolean_query(request, "atomic")
    if atomic:
        check_atomic_available(request, run_async)
    key = read_idempotency_key(request)
    await require_access(request, collection_id, principal, WRITE)
    config = request.app[config_key]
    items = await read_items(request, kind, config.jobs.max_items if run_async else config.server.max_items)
    fingerprint = request_fingerprint(request, items) if key is not None else ""
    apply_conditional_headers(request, items, run_async)

    context = write_context(request, principal.subject, collection_id, create_inverse=create_inverse)
    if validate_only:  # stores nothing, not even the key
        return await dry_run(request, context, upsert, items, atomic)
    if atomic:
        upsert = all_or_nothing(kind, upsert)

    async def process() -> web.Response:
        if run_async:
            return await accept(request, context, kind, items, received_at)
        return await apply(request, context, upsert, items, received_at)

    if key is None:
        return await process()
    return await request.app[idempotency_key].respond(key, principal.subject, collection_id, fingerprint, process)


async def apply(request: web.Request, context: WriteContext, upsert: Upsert, items: list[dict],
                received_at: datetime) -> web.Response:
    """Write the batch now and answer 207 (or 412 for a conditional one-item write that lost its check)."""
    result = await upsert(context, items)
    raise_if_precondition_failed(request, result)
    # awaited before answering: every tracker URL in the response must already resolve
    await context.storage.insert_status_batch(status_records(context, result, received_at))
    log_transaction(result)
    response = batch_response(request, result)
    response.headers["X-Transaction-Id"] = context.transaction_id
    return with_sequences(response, await sequences_after(context))


async def sequences_after(context: WriteContext) -> dict[str, int]:
    """The X-ER-Sequence of a write's answer: each collection it changed with its sequence number after the
    write, the request's collection first and always (its current number when the write changed nothing)."""
    written = context.sequences
    own = written.get(context.collection_id) or await context.storage.latest_sequence(context.collection_id)
    return {context.collection_id: own, **{name: number for name, number in written.items()
                                           if name != context.collection_id}}


def check_atomic_available(request: web.Request, run_async: bool) -> None:
    """400 saying why, when this request or this backend cannot have an all-or-nothing batch."""
    if run_async:
        raise InvalidRequest("atomic=true is available on synchronous requests only (async: false)")
    reason = request.app[storage_key].atomic_unavailable()
    if reason is not None:
        raise InvalidRequest(f"atomic=true is not available here: {reason}")


def write_context(request: web.Request, principal: str, collection_id: str, **options) -> WriteContext:
    """A new transaction of ``principal`` in ``collection_id``, bound to the request's log context."""
    transaction_id = new_transaction_id()
    structlog.contextvars.bind_contextvars(transaction_id=transaction_id)
    return WriteContext(
        storage=request.app[storage_key],
        catalog=request.app[catalog_key],
        acl=request.app[acl_key],
        principal=principal,
        collection_id=collection_id,
        transaction_id=transaction_id,
        correlation_id=correlation_id(request, transaction_id),
        destination_access=request.app[config_key].acl.destination_access,
        **options,
    )


async def dry_run(request: web.Request, context: WriteContext, upsert: Upsert, items: list[dict],
                  atomic: bool) -> web.Response:
    """The 207 the request would get now, sync or async (an async job applies the same rules), writing
    nothing: no document, no version, no status record, no job. Its trackers are null: nothing to track."""
    result = await upsert(replace(context, storage=DryRunStorage(context.storage)), items)
    if atomic and result.failures:
        result = nothing_written(result)
    raise_if_precondition_failed(request, result)
    response = batch_response(request, result, dry_run=True)
    response.headers["X-Transaction-Id"] = context.transaction_id
    return with_sequences(response, await sequences_after(context))  # nothing written: the current numbers


async def accept(request: web.Request, context: WriteContext, kind: Kind, items: list[dict],
                 received_at: datetime) -> web.Response:
    """Store the job, wake this process's workers, answer 202 with the transaction's tracker."""
    await accept_job(context, kind, items, received_at, request.app[config_key].jobs)  # Backpressure: 429
    for worker in request.app[job_workers_key]:
        worker.wake()
    tracker = f"{base_url(request)}/apollo/status/logs?transactionid={context.transaction_id}"
    response = envelope(
        202,
        f"Request {context.transaction_id} is processed and can be tracked by URL {tracker}",
        transactionId=context.transaction_id,
        data={"transactionId": context.transaction_id, "tracker": tracker},
    )
    response.headers["X-Transaction-Id"] = context.transaction_id
    return response


async def read_items(request: web.Request, kind: Kind, limit: int) -> list[dict]:
    body = await read_json(request)
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise InvalidRequest("The request body must be a JSON object or an array of objects")
    if len(body) > limit:
        raise PayloadTooLarge(f"A request may carry at most {limit} items; this one has {len(body)}")
    validate(request, f"{kind.name}-request", body)
    return body


def correlation_id(request: web.Request, transaction_id: str) -> str:
    supplied = request.headers.get("X-Correlation-Id", "")
    return supplied if 0 < len(supplied) <= 256 and supplied.isprintable() else transaction_id


def _plain(items: list[ItemResult]) -> bool:
    """Whether the items' entries are alike but for the id: one message, no details."""
    message = items[0].message
    return all(item.details is None and item.message == message for item in items)


def _entries_json(trackers: Trackers, item_ids: list[str], message: str) -> orjson.Fragment:
    """The entries ``{"id", "message", "tracker"}`` of items with these ids, alike but for the id, as the JSON
    orjson would make of them, in one join for the batch. Only for ids that neither JSON nor a URL escapes
    (``all_unreserved``): each id goes into its entry as it is, twice."""

    def inner(text: str) -> str:  # as JSON writes it inside a string
        return orjson.dumps(text).decode()[1:-1]

    opening = '{"id":"'
    middle = f'","message":"{inner(message)}","tracker":"{inner(trackers.prefix)}'  # between an id and the same id
    closing = f'{inner(trackers.suffix)}"}}'
    pieces = zip(item_ids, itertools.repeat(middle), item_ids, itertools.repeat(closing + "," + opening))
    joined = "".join(itertools.chain.from_iterable(pieces))  # ends with a separator too many
    return orjson.Fragment("[" + opening + joined[:-len("," + opening)] + "]")


def batch_response(request: web.Request, result: BatchResult, dry_run: bool = False) -> web.Response:
    trackers = None if dry_run else Trackers(request, result.kind, result.transaction_id)

    def entries(items: list[ItemResult]) -> list[dict] | orjson.Fragment:
        item_ids = [item.id for item in items]
        if trackers is not None and items and _plain(items) and all_unreserved(item_ids):
            return _entries_json(trackers, item_ids, items[0].message)
        urls = [None] * len(items) if trackers is None else trackers.urls(item_ids)
        return [{"id": item.id, "message": item.message, "tracker": url} if item.details is None
                else {"id": item.id, "message": item.message, "tracker": url, **item.details}
                for item, url in zip(items, urls)]

    successes = result.successes
    response = envelope(
        207,
        f"Total number of {result.kind.plural_label} Upserted:  {len(successes)}.",
        transactionId=result.transaction_id,
        data={"responses": {"success": entries(successes), "failure": entries(result.failures)}},
        **({"validateOnly": True} if dry_run else {}),
    )
    if len(result.results) == 1 and successes and not dry_run:  # a one-item write: its new version, for the next If-Match
        response.headers["ETag"] = etag(result.kind, successes[0].document)
    return response
