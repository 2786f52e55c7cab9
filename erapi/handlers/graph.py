"""The building graph: the neighbourhood of an entity over several hops, across collections (erapi/graph.py)."""

from __future__ import annotations

import hashlib
import re

import orjson
from aiohttp import web

from erapi.acl import READ
from erapi.auth import Principal
from erapi.errors import InvalidRequest, NotFound, shown
from erapi.graph import (DIRECTIONS, Key, Subgraph, Visibility, ends, entities_of, entity_classes, invalid, of_classes,
                         relationship_types, step, transitive, traverse)
from erapi.handlers.documents import present
from erapi.handlers.reads import open_token, page_headers
from erapi.keys import acl_key, catalog_key, page_tokens_key, storage_key, validator_key
from erapi.pattern import Matcher, compile_pattern, path_position, paths
from erapi.web import READ_SCOPE, authorize, boolean_query, collection_header, envelope, read_json, require_access

MAX_DEPTH = 5
DEFAULT_NODE_LIMIT = 1000
MAX_NODE_LIMIT = 10000
WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")  # ASCII digits, whole value (fullmatch): no "²", no "5\n"


async def get_entity_graph(request: web.Request) -> web.Response:
    """``{nodes, edges, truncated}``: the entities within ``depth`` hops of one entity (or, ``transitive=true``,
    along transitive Brick relationships as far as they go), each once, and the relationships between them."""
    principal = await authorize(request, READ_SCOPE)
    collection_id = collection_header(request)
    await require_access(request, collection_id, principal, READ)
    catalog = request.app[catalog_key]
    direction = request.query.get("direction", "both")
    if direction not in DIRECTIONS:
        raise invalid("direction", "must be outgoing, incoming or both")
    named = request.query.getall("relationshipType", [])
    types = [found for name in named for found in relationship_types(catalog, name, "relationshipType")] or None
    classes = frozenset().union(*(entity_classes(catalog, name, "entityType")
                                  for name in request.query.getall("entityType", []))) or None
    depth = _depth(request, types)
    node_limit = _whole_number(request, "limit", DEFAULT_NODE_LIMIT, 1, MAX_NODE_LIMIT)
    include_system_data = boolean_query(request, "includeSystemData")
    storage = request.app[storage_key]
    start = (collection_id, request.match_info["entityId"])
    graph = await traverse(storage, readable_by(request, principal, collection_id), start,
                           step(catalog, direction, types), depth, node_limit)
    return await _answer(request, graph, start, classes, include_system_data)


def _depth(request: web.Request, types: list | None) -> int | None:
    """The hop count; None with ``transitive=true``, which needs transitive relationship types and no depth."""
    if not boolean_query(request, "transitive"):
        return _whole_number(request, "depth", 1, 1, MAX_DEPTH)
    if "depth" in request.query:
        raise invalid("depth", "transitive=true follows the relationships as far as they go: leave depth out")
    if types is None or not transitive(types):
        raise invalid("transitive", "transitive=true needs relationshipType filters naming transitive Brick "
                                    "relationships only (feeds, isFedBy, hasPart, isPartOf, hasLocation, "
                                    "isLocationOf)")
    return None


def _whole_number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not WHOLE_NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise invalid(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def readable_by(request: web.Request, principal: Principal, collection_id: str) -> Visibility:
    """The visibility of ``principal``'s request; ``collection_id`` (already authorised) is readable."""
    async def ask(collections: set[str]) -> set[str]:
        rights = await request.app[acl_key].access_to_many(collections, principal.subject)
        return {collection for collection in collections if READ in rights[collection]}

    return Visibility(ask, readable={collection_id})


async def _answer(request: web.Request, graph: Subgraph, start: Key, classes: frozenset[str] | None,
                  include_system_data: bool) -> web.Response:
    documents = await entities_of(request.app[storage_key], graph.depth)
    if start not in documents:
        raise NotFound(f"Entity {shown(start[1])} not found in ERCollection {start[0]}")
    kept = {key for key, document in documents.items()
            if key == start or classes is None or of_classes(document, classes)}
    nodes = [{"erCollectionId": key[0], "id": key[1], "depth": graph.depth[key],
              "entity": present(documents[key], include_system_data)}
             for key in sorted(kept, key=lambda key: (graph.depth[key], key))]
    edges = [present(edge, include_system_data) for key, edge in sorted(graph.edges.items())
             if all(end in kept for end in ends(edge))]
    return envelope(200, "", data={"nodes": nodes, "edges": edges, "truncated": graph.truncated})


# ---- path patterns ----------------------------------------------------------------------------------------------


async def query_graph(request: web.Request) -> web.Response:
    """The distinct end entities, or every path, matching a pattern (schemas/graph-query.json), in pages."""
    principal = await authorize(request, READ_SCOPE)
    collection_id = collection_header(request)
    await require_access(request, collection_id, principal, READ)
    body = await read_json(request)
    errors = request.app[validator_key].errors("graph-query", body)
    if errors:
        where = errors[0]["path"] or "/"
        raise InvalidRequest(f"{where}: {errors[0]['message']}", errors=errors)
    pattern = compile_pattern(request.app[catalog_key], body)
    size, token = page_headers(request)
    # bound to a digest of the pattern: the pattern itself could outgrow a token
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    binding = {"list": "graph/query", "pattern": digest}
    after = open_token(request, token, collection_id, binding)
    matcher = Matcher(request.app[storage_key], readable_by(request, principal, collection_id))
    starts = await matcher.starts(pattern, collection_id)
    if pattern.start_id is not None and not await entities_of(request.app[storage_key], starts):
        raise NotFound(f"Entity {shown(pattern.start_id)} not found in ERCollection {collection_id}")
    matched = await matcher.links(pattern, starts)
    if pattern.paths:
        items = [({"entities": [_key(key) for key in entities],
                   "relationships": [_relationship_key(key) for key in relationships]},
                  path_position(entities, relationships)) for entities, relationships in paths(matched, starts)]
    else:
        items = [({"erCollectionId": key[0], "id": key[1], "entity": present(document, False)}, list(key))
                 for key, document in await matcher.entities(matched)]
    return _page_of(request, collection_id, binding, items, after, size)


def _key(key: Key) -> dict:
    return {"erCollectionId": key[0], "id": key[1]}


def _relationship_key(key: Key | None) -> dict | None:
    return None if key is None else {"sourceERCollectionId": key[0], "id": key[1]}


def _page_of(request: web.Request, collection_id: str, binding: dict, items: list[tuple[dict, list]],
             after, size: int) -> web.Response:
    """One page of ``items`` (each with its sort position), strictly after the token's position."""
    remaining = [item for item in items if after is None or item[1] > after]
    page = remaining[:size]
    next_token = None
    if len(remaining) > size:
        next_token = request.app[page_tokens_key].issue(collection_id, binding, page[-1][1])
    return envelope(200, "", data=[item for item, _ in page],
                    paging={"totalCount": len(items), "continuationToken": next_token})
