"""DELETE of one relationship or one entity: soft deletes, written as new versions with ``isActive: false``."""

from __future__ import annotations

from datetime import datetime, timezone

import structlog
from aiohttp import web

from erapi.acl import WRITE
from erapi.batch import sequences_after, write_context
from erapi.consistency import with_sequences
from erapi.errors import shown
from erapi.kinds import KINDS
from erapi.metrics import record_items
from erapi.preconditions import header_expectation
from erapi.web import WRITE_SCOPE, authorize, boolean_query, collection_header, envelope, require_access, tracker_url
from erapi.writes.context import WriteContext
from erapi.writes.deletes import DeleteResult, delete_entity, delete_relationship
from erapi.writes.status_records import delete_status_records


async def delete_relationship_handler(request: web.Request) -> web.Response:
    relationship_id = request.match_info["relationshipId"]
    context, received_at = await _write_context(request)
    result = await delete_relationship(context, relationship_id, if_match(request))
    return await _respond(request, context, result, received_at, f"Relationship {shown(relationship_id)} deleted")


async def delete_entity_handler(request: web.Request) -> web.Response:
    entity_id = request.match_info["entityId"]
    context, received_at = await _write_context(request)
    cascade = boolean_query(request, "cascade")
    result = await delete_entity(context, entity_id, cascade, if_match(request))
    cascaded = len(result.deactivated) - 1
    message = f"Entity {shown(entity_id)} deleted"
    if cascaded:
        message += f" with {cascaded} relationship{'s' if cascaded > 1 else ''} that referenced it"
    return await _respond(request, context, result, received_at, message)


def if_match(request: web.Request) -> int | None:
    """The version an If-Match delete expects (None without the header)."""
    expectation = header_expectation(request, create_only=False)
    return None if expectation is None else expectation[1]


async def _write_context(request: web.Request) -> tuple[WriteContext, datetime]:
    received_at = datetime.now(timezone.utc)
    principal = await authorize(request, WRITE_SCOPE)
    collection_id = collection_header(request)
    await require_access(request, collection_id, principal, WRITE)
    return write_context(request, principal.subject, collection_id), received_at


async def _respond(request: web.Request, context: WriteContext, result: DeleteResult, received_at: datetime,
                   message: str) -> web.Response:
    # awaited before answering: every tracker URL in the response must already resolve
    await context.storage.insert_status_batch(delete_status_records(context, result, received_at))
    for kind in KINDS:
        record_items(kind.name, "delete", sum(1 for item in result.deactivated if item.kind is kind))
    structlog.get_logger("erapi.transaction").info(
        "transaction", kind="delete", items=len(result.deactivated), succeeded=len(result.deactivated), failed=0,
        deactivated=[{"kind": item.kind.name, "ercollectionid": item.collection_id, "id": item.id}
                     for item in result.deactivated],
    )
    deleted = [
        {
            "id": item.id,
            "object": item.kind.label,
            "erCollectionId": item.collection_id,
            "version": item.document["sysData"][item.kind.version_field],
            "message": item.message,
            "tracker": tracker_url(request, item.kind, item.id, context.transaction_id),
        }
        for item in result.deactivated
    ]
    response = envelope(200, message, transactionId=context.transaction_id, data={"deleted": deleted})
    response.headers["X-Transaction-Id"] = context.transaction_id
    return with_sequences(response, await sequences_after(context))
