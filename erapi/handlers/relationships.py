"""POST /apollo/er/relationships (the core batch upsert) and GET of one relationship."""

from __future__ import annotations

from aiohttp import web

from erapi.batch import handle_batch_write
from erapi.handlers.documents import get_document
from erapi.kinds import RELATIONSHIPS
from erapi.writes.relationships import upsert_relationships


async def post_relationships(request: web.Request) -> web.Response:
    return await handle_batch_write(request, RELATIONSHIPS, upsert_relationships)


async def get_relationship(request: web.Request) -> web.Response:
    return await get_document(request, RELATIONSHIPS, request.match_info[RELATIONSHIPS.id_field])
