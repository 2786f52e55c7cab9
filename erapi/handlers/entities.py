"""POST /apollo/er/entities (batch upsert) and GET of one entity."""

from __future__ import annotations

from aiohttp import web

from erapi.batch import handle_batch_write
from erapi.handlers.documents import get_document
from erapi.kinds import ENTITIES
from erapi.writes.entities import upsert_entities


async def post_entities(request: web.Request) -> web.Response:
    return await handle_batch_write(request, ENTITIES, upsert_entities)


async def get_entity(request: web.Request) -> web.Response:
    return await get_document(request, ENTITIES, request.match_info[ENTITIES.id_field])
