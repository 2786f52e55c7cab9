"""The global type catalog: relationship types and entity types (no ercollectionid header)."""

from __future__ import annotations

from aiohttp import web

from erapi.catalog import Catalog
from erapi.errors import InvalidRequest, NotFound, shown
from erapi.keys import catalog_key
from erapi.web import READ_SCOPE, authorize, envelope


def _listing(documents: list[dict]) -> web.Response:
    return envelope(200, "", data=documents, paging={"totalCount": len(documents), "continuationToken": None})


async def list_relationship_types(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    catalog = request.app[catalog_key]
    source = _known_class(catalog, request.query.get("sourceEntityType"), "sourceEntityType")
    destination = _known_class(catalog, request.query.get("destinationEntityType"), "destinationEntityType")
    return _listing([t.document for t in catalog.relationship_types_between(source, destination)])


def _known_class(catalog: Catalog, name: str | None, parameter: str) -> str | None:
    if name is not None and catalog.entity_type(name) is None:
        raise InvalidRequest(f"{parameter} {shown(name)} is not in the entity type catalog")
    return name


async def get_relationship_type(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    return envelope(200, "", data=[_relationship_type(request).document])


async def get_relationship_type_entity_types(request: web.Request) -> web.Response:
    """The classes the type may join: its source class and every subclass, likewise its destination."""
    await authorize(request, READ_SCOPE)
    catalog = request.app[catalog_key]
    found = _relationship_type(request)
    return envelope(200, "", data=[{
        "relationshipType": found.name,
        "sourceEntityTypes": catalog.descendants(found.source),
        "destinationEntityTypes": catalog.descendants(found.destination),
    }])


def _relationship_type(request: web.Request):
    found = request.app[catalog_key].relationship_type(request.match_info["type"])
    if found is None:
        raise NotFound(f"Relationship type {shown(request.match_info['type'])} not found")
    return found


async def list_entity_types(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    return _listing([t.document for t in request.app[catalog_key].entity_types.values()])


async def get_entity_type(request: web.Request) -> web.Response:
    await authorize(request, READ_SCOPE)
    catalog = request.app[catalog_key]
    found = catalog.entity_type(request.match_info["type"])
    if found is None:
        raise NotFound(f"Entity type {shown(request.match_info['type'])} not found")
    return envelope(200, "", data=[{
        **found.document,
        "ancestors": sorted(found.ancestors),
        "children": sorted(catalog.children[found.name]),
    }])
