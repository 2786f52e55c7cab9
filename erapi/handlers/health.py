"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from aiohttp import web

from erapi.keys import storage_key
from erapi.web import envelope
from storage_plugins.base import StorageError


async def healthz(request: web.Request) -> web.Response:
    return envelope(200, "alive")


async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[storage_key].ping()
    except StorageError:
        return envelope(503, "storage is not answering")
    return envelope(200, "ready")
