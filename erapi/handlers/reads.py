"""Reading many: lists of entities and relationships (all, per type, per entity), versions, collection stats.

Every list is ordered by a key that an update never changes (``id``; for the edges of an entity, the
collection a relationship lives in and its ``id``). A page's continuation token carries the key of its last
item, signed and bound to the collection and the query, so paging while others write never repeats an item
and never skips one that existed when the first page was read. A page costs one storage query, and one count.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Iterable

from aiohttp import web

from erapi.acl import READ
from erapi.auth import Principal
from erapi.catalog import Catalog, spellings
from erapi.errors import InvalidRequest, NotFound, shown
from erapi.handlers.documents import get_document, present
from erapi.keys import acl_key, catalog_key, page_tokens_key, storage_key
from erapi.kinds import ENTITIES, RELATIONSHIPS, Kind
from erapi.web import (
    COLLECTION_ID, READ_SCOPE, authorize, collection_header, envelope, require_access,
)
from storage_plugins.base import DocumentQuery, EdgeQuery, version_of

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
PAGE_SIZE_TEXT = re.compile(r"[0-9]{1,7}")  # fullmatch: "$" would also take a trailing newline
MAX_TOKEN_CHARS = 4096
ID_TEXT = re.compile(r"^[^\x00-\x1f]{1,256}$")
# query parameter -> DocumentQuery field
RELATIONSHIP_FILTERS = {
    "sourceEntityId": "source_entity_id",
    "destinationEntityId": "destination_entity_id",
    "destinationERCollectionId": "destination_collection_id",
}
DIRECTIONS = ("outgoing", "incoming", "both")


# ---- lists of a collection ------------------------------------------------------------------------------------


async def list_relationships(request: web.Request) -> web.Response:
    _principal, collection_id = await _reader(request)
    return await _list(request, collection_id, RELATIONSHIPS, tuple(RELATIONSHIP_FILTERS))


async def list_entities(request: web.Request) -> web.Response:
    _principal, collection_id = await _reader(request)
    return await _list(request, collection_id, ENTITIES)


async def list_relationships_of_type(request: web.Request) -> web.Response:
    _principal, collection_id = await _reader(request)
    catalog = request.app[catalog_key]
    found = _relationship_type(catalog, request.match_info["type"])
    return await _list(request, collection_id, RELATIONSHIPS, tuple(RELATIONSHIP_FILTERS),
                       type_name=found.name, types=spellings(catalog, [found.name]))


async def list_entities_of_type(request: web.Request) -> web.Response:
    _principal, collection_id = await _reader(request)
    catalog = request.app[catalog_key]
    found = catalog.entity_type(request.match_info["type"])
    if found is None:
        raise NotFound(f"Entity type {shown(request.match_info['type'])} not found in the entity type catalog")
    subtypes = _boolean(request, "includeSubtypes", False)
    names = catalog.descendants(found.name) if subtypes else [found.name]
    return await _list(request, collection_id, ENTITIES, type_name=found.name,
                       types=spellings(catalog, names), subtypes=subtypes)


async def get_relationship_of_type(request: web.Request) -> web.Response:
    catalog = request.app[catalog_key]
    name = request.match_info["type"]
    return await get_document(request, RELATIONSHIPS, request.match_info[RELATIONSHIPS.id_field],
                              types=lambda: spellings(catalog, [_relationship_type(catalog, name).name]),
                              type_name=name)


async def _list(request: web.Request, collection_id: str, kind: Kind, filter_names: tuple[str, ...] = (), *,
                type_name: str | None = None, types: frozenset[str] | None = None,
                subtypes: bool = False) -> web.Response:
    """One page of a list; its query parameters were checked against its operation (erapi/middleware.py)."""
    filters = {name: _filter_value(name, request.query[name]) for name in filter_names if name in request.query}
    include_inactive = _boolean(request, "includeInactive", False)
    include_system_data = _boolean(request, "includeSystemData", False)
    size, token = page_headers(request)
    binding = {"list": kind.name, "type": type_name, "subtypes": subtypes, "filters": filters,
               "inactive": include_inactive}
    after = open_token(request, token, collection_id, binding)
    if after is not None and not isinstance(after, str):
        raise InvalidRequest("continuationToken was issued for another collection or query")
    query = DocumentQuery(types=types, additional_types=subtypes, active_only=not include_inactive, after_id=after,
                          limit=size + 1,
                          **{RELATIONSHIP_FILTERS[name]: value for name, value in filters.items()})
    storage = request.app[storage_key]
    documents = await storage.list_current(kind.name, collection_id, query)
    next_token = None
    if len(documents) > size:
        documents = documents[:size]
        next_token = request.app[page_tokens_key].issue(collection_id, binding, documents[-1]["id"])
    total = await storage.count_current(kind.name, collection_id, query)
    return _page(documents, include_system_data, total, next_token)


# ---- the edges of one entity ----------------------------------------------------------------------------------


async def list_entity_relationships(request: web.Request) -> web.Response:
    """Outgoing: stored in the header's collection with the entity as source. Incoming: stored in any
    collection with the entity as destination, shown only from collections the caller may read."""
    principal, collection_id = await _reader(request)
    entity_id = request.match_info["entityId"]
    direction = request.query.get("direction", "both")
    if direction not in DIRECTIONS:
        raise InvalidRequest("The query parameter direction must be outgoing, incoming or both")
    include_inactive = _boolean(request, "includeInactive", False)
    include_system_data = _boolean(request, "includeSystemData", False)
    size, token = page_headers(request)
    binding = {"list": "edges", "entity": entity_id, "direction": direction, "inactive": include_inactive}
    after = open_token(request, token, collection_id, binding)
    if after is not None and not (isinstance(after, list) and len(after) == 2
                                  and all(isinstance(part, str) for part in after)):
        raise InvalidRequest("continuationToken was issued for another collection or query")
    query = EdgeQuery(collection_id, entity_id, outgoing=direction != "incoming",
                      incoming=direction != "outgoing", active_only=not include_inactive)
    storage = request.app[storage_key]
    # the count, per collection, is also where the edges live: it decides what the caller may see
    counts = await storage.count_edges(query)
    readable = await readable_collections(request, principal, collection_id, counts)
    total = sum(counts.get(collection, 0) for collection in readable)
    documents = []
    if total:
        page_query = replace(query, source_collections=frozenset(readable),
                             after=tuple(after) if after else None, limit=size + 1)
        documents = await storage.find_edges(page_query)
    next_token = None
    if len(documents) > size:
        documents = documents[:size]
        last = documents[-1]
        next_token = request.app[page_tokens_key].issue(collection_id, binding,
                                                        [last["sourceERCollectionId"], last["id"]])
    return _page(documents, include_system_data, total, next_token)


async def readable_collections(request: web.Request, principal: Principal, collection_id: str,
                               collections: Iterable[str]) -> set[str]:
    """Those of ``collections`` the caller may read; ``collection_id`` (already authorised) always is."""
    others = set(collections) - {collection_id}
    rights = await request.app[acl_key].access_to_many(others, principal.subject)
    return {collection_id} | {collection for collection in others if READ in rights[collection]}


# ---- versions ---------------------------------------------------------------------------------------------------


async def relationship_versions(request: web.Request) -> web.Response:
    return await _versions(request, RELATIONSHIPS, request.match_info[RELATIONSHIPS.id_field])


async def entity_versions(request: web.Request) -> web.Response:
    return await _versions(request, ENTITIES, request.match_info[ENTITIES.id_field])


async def _versions(request: web.Request, kind: Kind, document_id: str) -> web.Response:
    """Every version, oldest first, with sysData unless ``includeSystemData=false``; paged by version."""
    _principal, collection_id = await _reader(request)
    include_system_data = _boolean(request, "includeSystemData", True)
    size, token = page_headers(request)
    binding = {"list": f"{kind.name}/versions", "id": document_id}
    after = open_token(request, token, collection_id, binding)
    if after is not None and (not isinstance(after, int) or isinstance(after, bool)):
        raise InvalidRequest("continuationToken was issued for another collection or query")
    storage = request.app[storage_key]
    found = await storage.get_version_page(kind.name, collection_id, document_id, after, size + 1)
    if found.newest is None:
        raise NotFound(f"{kind.label} {shown(document_id)} not found in ERCollection {collection_id}")
    # the newest may be claimed but unpublished (its writer died): publish it, so that GET shows what this lists
    await storage.publish_behind(kind.name, collection_id, [found.newest])
    versions, next_token = found.versions, None
    if len(versions) > size:
        versions = versions[:size]
        next_token = request.app[page_tokens_key].issue(collection_id, binding, version_of(kind.name, versions[-1]))
    return _page(versions, include_system_data, found.total, next_token)


# ---- stats --------------------------------------------------------------------------------------------------------


async def path_collection(request: web.Request) -> str:
    """The collection of the path (``{collectionId}``), once the caller proved it may read it."""
    principal = await authorize(request, READ_SCOPE)
    collection_id = request.match_info["collectionId"]
    if not COLLECTION_ID.match(collection_id):
        raise InvalidRequest(f"{shown(collection_id)} is not a valid ERCollection id")
    await require_access(request, collection_id, principal, READ)
    return collection_id


async def collection_stats(request: web.Request) -> web.Response:
    collection_id = await path_collection(request)
    _boolean(request, "includeSystemData", False)  # accepted everywhere; stats carry no system data
    storage = request.app[storage_key]
    entities = await storage.count_by_type("entities", collection_id)
    relationships = await storage.count_by_type("relationships", collection_id)
    return envelope(200, "", data=[{
        "Summary": {"Entities": sum(entities.values()), "Relationships": sum(relationships.values())},
        "Entities": dict(sorted(entities.items())),
        "Relationships": dict(sorted(relationships.items())),
    }])


# ---- shared ---------------------------------------------------------------------------------------------------


def _relationship_type(catalog: Catalog, name: str):
    found = catalog.relationship_type(name)
    if found is None:
        raise NotFound(f"Relationship type {shown(name)} not found in the relationship type catalog")
    return found


async def _reader(request: web.Request) -> tuple[Principal, str]:
    principal = await authorize(request, READ_SCOPE)
    collection_id = collection_header(request)
    await require_access(request, collection_id, principal, READ)
    return principal, collection_id


def _boolean(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise InvalidRequest(f"The query parameter {name} must be true or false")
    return value.lower() == "true"


def _filter_value(name: str, value: str) -> str:
    pattern = COLLECTION_ID if name == "destinationERCollectionId" else ID_TEXT
    if not pattern.match(value):
        raise InvalidRequest(f"The query parameter {name} is not a valid "
                             f"{'ERCollection id' if pattern is COLLECTION_ID else 'id'}")
    return value


def page_headers(request: web.Request) -> tuple[int, str | None]:
    """The PageSize header (1-1000, default 100) and the continuationToken header (absent or empty: none)."""
    raw = request.headers.get("PageSize")
    size = DEFAULT_PAGE_SIZE
    if raw is not None:
        raw = raw.strip()
        if not PAGE_SIZE_TEXT.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"The PageSize header must be a whole number from 1 to {MAX_PAGE_SIZE}")
        size = int(raw)
    token = request.headers.get("continuationToken", "").strip() or None
    return size, token


def open_token(request: web.Request, token: str | None, collection_id: str, binding: dict) -> Any:
    if token is None:
        return None
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise InvalidRequest("continuationToken is invalid")
    return request.app[page_tokens_key].open(token, collection_id, binding)


def _page(documents: list[dict], include_system_data: bool, total: int, next_token: str | None) -> web.Response:
    return envelope(200, "", data=[present(document, include_system_data) for document in documents],
                    paging={"totalCount": total, "continuationToken": next_token})
