"""The global type catalog: relationship types and entity types (no ercollectionid header)."""

from __future__ import annotations

from aiohttp import web

from erapi.errors import NotFound
from erapi.keys import catalog_key
from erapi.web import READ_SCOPE, authorize, envelope


async def list_relationship_types(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    types = [t.document for t in request.app[catalog_key].relationship_types.values()]
    return envelope(200, "", data=types, paging={"totalCount": len(types), "continuationToken": None})


async def get_relationship_type(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    found = request.app[catalog_key].relationship_type(request.match_info["type"])
    if found is None:
        raise NotFound(f"Relationship type {request.match_info['type']} not found")
    return envelope(200, "", data=[found.document])


async def list_entity_types(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    types = [t.document for t in request.app[catalog_key].entity_types.values()]
    return envelope(200, "", data=types, paging={"totalCount": len(types), "continuationToken": None})


async def get_entity_type(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    found = request.app[catalog_key].entity_type(request.match_info["type"])
    if found is None:
        raise NotFound(f"Entity type {request.match_info['type']} not found")
    return envelope(200, "", data=[{**found.document, "ancestors": sorted(found.ancestors)}])
