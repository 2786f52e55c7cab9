"""The application factory: routes, middlewares and resources, with no I/O until the app starts."""

from __future__ import annotations

import hashlib
import secrets
from typing import AsyncIterator

import structlog
from aiohttp import web

from erapi.acl import AccessControl
from erapi.auth import create_authenticator, resolve_local_secret
from erapi.catalog import load_catalog
from erapi.config import Config
from erapi.keys import (
    acl_key,
    authenticator_key,
    catalog_key,
    config_key,
    page_tokens_key,
    storage_key,
    validator_key,
)
from erapi.middleware import error_middleware, no_store_middleware, request_context_middleware
from erapi.paging import PageTokens
from erapi.routes import ROUTES
from erapi.validation import RequestValidator, load_schema_documents
from storage_plugins.base import create_storage

logger = structlog.get_logger("erapi.app")


def create_app(config: Config) -> web.Application:
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[no_store_middleware, request_context_middleware, error_middleware],
    )
    app[config_key] = config
    app.add_routes(ROUTES)
    app.cleanup_ctx.extend([_schemas_and_catalog, _storage, _authenticator])
    return app


async def _schemas_and_catalog(app: web.Application) -> AsyncIterator[None]:
    app[catalog_key] = load_catalog()
    app[validator_key] = RequestValidator(load_schema_documents())
    app[page_tokens_key] = PageTokens(_paging_secret(app[config_key]))
    yield


async def _storage(app: web.Application) -> AsyncIterator[None]:
    config = app[config_key]
    storage = create_storage(config.storage, config.storage_settings())
    await storage.open()
    app[storage_key] = storage
    app[acl_key] = AccessControl(storage, config.acl.cache_ttl_seconds)
    logger.info("storage opened", plugin=config.storage)
    try:
        yield
    finally:
        await storage.close()


async def _authenticator(app: web.Application) -> AsyncIterator[None]:
    authenticator = create_authenticator(app[config_key].auth)
    await authenticator.open()
    app[authenticator_key] = authenticator
    try:
        yield
    finally:
        await authenticator.close()


def _paging_secret(config: Config) -> bytes:
    if config.server.paging_secret:
        return config.server.paging_secret.encode()
    if config.auth.mode == "local":
        # every process sharing the local secret accepts the others' continuation tokens
        return hashlib.sha256(b"erapi paging\0" + resolve_local_secret(config.auth).encode()).digest()
    logger.warning("server.paging_secret is not set: continuation tokens are valid only in this process")
    return secrets.token_bytes(32)
