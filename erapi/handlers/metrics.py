"""GET /metrics: Prometheus's text exposition of erapi.metrics, open or behind a static bearer token (config)."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from erapi.errors import NotFound, Unauthenticated
from erapi.keys import config_key, storage_key
from erapi.metrics import PENDING_ITEMS, registry
from storage_plugins.base import StorageError


async def get_metrics(request: web.Request) -> web.Response:
    settings = request.app[config_key].metrics
    if not settings.enabled:
        raise NotFound("Metrics are turned off (metrics.enabled)")
    if settings.token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                                  f"Bearer {settings.token}".encode()):
        raise Unauthenticated("The metrics token (metrics.token) is required")
    try:
        PENDING_ITEMS.set(await request.app[storage_key].pending_items(None))
    except StorageError:
        PENDING_ITEMS.set(float("nan"))  # unknown, rather than the last value as if it were current
    return web.Response(body=generate_latest(registry()), headers={"Content-Type": CONTENT_TYPE_LATEST})
