"""Reading one entity or relationship by id, shared by both resources and the per-type reads."""

from __future__ import annotations

from typing import Callable, Collection

from aiohttp import web

from erapi.acl import READ
from erapi.errors import NotFound, shown
from erapi.keys import storage_key
from erapi.kinds import Kind
from erapi.preconditions import etag
from erapi.web import READ_SCOPE, authorize, boolean_query, collection_header, envelope, require_access
from erapi.writes.versioning import is_active, read_current


async def get_document(request: web.Request, kind: Kind, document_id: str,
                       types: Callable[[], Collection[str]] | None = None, type_name: str = "") -> web.Response:
    """200 with the document, or 404 when it is absent, soft-deleted (unless ``includeInactive=true``) or,
    with ``types`` (called once the caller is authorised; it may raise NotFound), stored under another type."""
    principal = await authorize(request, READ_SCOPE)
    collection_id = collection_header(request)
    await require_access(request, collection_id, principal, READ)
    wanted_types = types() if types is not None else None
    include_system_data = boolean_query(request, "includeSystemData")
    include_inactive = boolean_query(request, "includeInactive")
    document = await read_current(request.app[storage_key], kind, collection_id, document_id)
    if (document is None or (not include_inactive and not is_active(document))
            or (wanted_types is not None and document.get(kind.type_field) not in wanted_types)):
        of_type = f" of type {shown(type_name)}" if type_name else ""
        raise NotFound(f"{kind.label} {shown(document_id)}{of_type} not found in ERCollection {collection_id}")
    response = envelope(200, "", data=[present(document, include_system_data)])
    response.headers["ETag"] = etag(kind, document)  # its version: what If-Match names on the next write
    return response


def present(document: dict, include_system_data: bool) -> dict:
    if include_system_data:
        return document
    return {key: value for key, value in document.items() if key != "sysData"}
