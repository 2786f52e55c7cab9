"""GET /apollo/er/ercollections/{collectionId}/export: a collection as Brick RDF, streamed page by page."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from aiohttp import web

from erapi import brick_rdf
from erapi.errors import NotAcceptable
from erapi.handlers.reads import path_collection
from erapi.keys import catalog_key, storage_key
from storage_plugins.base import DocumentQuery

TURTLE, JSON_LD = "text/turtle", "application/ld+json"
FORMATS = {TURTLE: "turtle", JSON_LD: "json-ld"}
WILDCARDS = {"*/*": TURTLE, "text/*": TURTLE, "application/*": JSON_LD}
PAGE_SIZE = 1000  # documents read, converted and sent at a time: memory stays bounded by one page


async def export_collection(request: web.Request) -> web.StreamResponse:
    collection_id = await path_collection(request)
    media_type = negotiate(request.headers.get("Accept", "*/*"))
    # sent before any middleware sees the response, so the no-store every authenticated answer carries is set here
    response = web.StreamResponse(headers={"Content-Type": f"{media_type}; charset=utf-8", "Cache-Control": "no-store"})
    await response.prepare(request)
    separator = b"[" if media_type == JSON_LD else b""
    async for page in _pages(request, collection_id, media_type):
        if page:
            await response.write(separator + page)
            separator = b"," if media_type == JSON_LD else b""
    await response.write(b"[]" if separator == b"[" else b"]" if media_type == JSON_LD else b"")
    await response.write_eof()
    return response


def negotiate(accept: str) -> str:
    """The format the Accept header prefers (highest q, then first listed); 406 when it takes neither."""
    offers = []
    for position, part in enumerate(accept.split(",")):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = next((_quality(p[2:]) for p in parameters if p.startswith("q=")), 1.0)
        found = media.lower() if media.lower() in FORMATS else WILDCARDS.get(media.lower())
        if found and quality > 0:
            offers.append((-quality, position, found))
    if not offers:
        raise NotAcceptable(f"The export is available as {TURTLE} or {JSON_LD}; the Accept header takes neither")
    return min(offers)[2]


def _quality(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


async def _pages(request: web.Request, collection_id: str, media_type: str):
    """Each page of active entities, then of relationships, serialized (in a thread: it is CPU work)."""
    storage, catalog = request.app[storage_key], request.app[catalog_key]
    loop = asyncio.get_running_loop()
    for kind in ("entities", "relationships"):
        after = None
        while True:
            documents = await storage.list_current(kind, collection_id, DocumentQuery(after_id=after, limit=PAGE_SIZE))
            if not documents:
                break
            add = _entity_adder(catalog, collection_id) if kind == "entities" else _relationship_adder(catalog)
            yield await loop.run_in_executor(None, serialize, documents, add, media_type)
            after = documents[-1]["id"]


def _entity_adder(catalog, collection_id: str) -> Callable:
    return lambda graph, document: brick_rdf.add_entity(graph, catalog, collection_id, document)


def _relationship_adder(catalog) -> Callable:
    return lambda graph, document: brick_rdf.add_relationship(graph, catalog, document)


def serialize(documents: list[dict[str, Any]], add: Callable, media_type: str) -> bytes:
    """One page as Turtle (prefixes repeated per page, which Turtle allows), or as the node objects of an
    expanded JSON-LD array, without its brackets, so that pages join into one array."""
    graph = brick_rdf.new_graph()
    for document in documents:
        add(graph, document)
    text = graph.serialize(format=FORMATS[media_type], encoding="utf-8")
    if media_type == JSON_LD:
        text = text.strip()[1:-1].strip()
    return text
