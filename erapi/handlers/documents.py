"""Reading one entity or relationship by id, shared by both resources."""

from __future__ import annotations

from aiohttp import web

from erapi.acl import READ
from erapi.errors import NotFound
from erapi.keys import storage_key
from erapi.web import READ_SCOPE, authorize, boolean_query, collection_header, envelope, require_access

LABELS = {"entities": "Entity", "relationships": "Relationship"}


async def get_document(request: web.Request, kind: str, document_id: str) -> web.Response:
    principal = await authorize(request, READ_SCOPE)
    collection_id = collection_header(request)
    await require_access(request, collection_id, principal, READ)
    include_system_data = boolean_query(request, "includeSystemData")
    found = await request.app[storage_key].get_current(kind, collection_id, [document_id])
    document = found.get(document_id)
    if document is None or not document.get("isActive", True):
        raise NotFound(f"{LABELS[kind]} {document_id} not found in ERCollection {collection_id}")
    return envelope(200, "", data=[present(document, include_system_data)])


def present(document: dict, include_system_data: bool) -> dict:
    if include_system_data:
        return document
    return {key: value for key, value in document.items() if key != "sysData"}
