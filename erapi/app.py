"""The application factory: routes, middlewares and resources, with no I/O until the app starts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from typing import AsyncIterator

import orjson
import structlog
from aiohttp import web

from erapi import installed_version
from erapi.access_log import AccessLogger, request_context_middleware
from erapi.acl import AccessControl
from erapi.auth import create_authenticator, resolve_local_secret
from erapi.catalog import load_catalog
from erapi.changes import ChangeNotifier, ChangeTrimmer
from erapi.config import Config
from erapi.delivery import DeliveryWorker
from erapi.idempotency import Idempotency
from erapi.jobs import JobWorker, Services
from erapi.keys import (
    acl_key,
    authenticator_key,
    catalog_key,
    change_notifier_key,
    config_key,
    delivery_worker_key,
    idempotency_key,
    openapi_key,
    job_workers_key,
    page_tokens_key,
    rate_limiter_key,
    storage_key,
    validator_key,
)
from erapi.metrics import MeteredStorage
from erapi.middleware import (
    error_middleware,
    no_store_middleware,
    request_limits_middleware,
)
from erapi.openapi import build_document
from erapi.paging import PageTokens
from erapi.ratelimit import RateLimiter
from erapi.routes import OPERATIONS, ROUTES
from erapi.validation import RequestValidator, load_schema_documents
from storage_plugins.base import create_storage

logger = structlog.get_logger("erapi.app")


def create_app(config: Config) -> web.Application:
    # the HTTP parser's own per-line ceiling sits above the configured total, so that oversized headers
    # normally reach request_limits_middleware and get a 431 in the envelope; past it the parser answers 400
    header_ceiling = max(8190, 2 * config.server.max_header_bytes)
    app = web.Application(
        client_max_size=config.server.max_body_bytes,
        middlewares=[request_context_middleware, no_store_middleware, error_middleware, request_limits_middleware],
        # handler_args win over the runner's arguments: `erapi serve`, its workers and the tests all log alike
        handler_args={"max_line_size": header_ceiling, "max_field_size": header_ceiling, "max_headers": 128,
                      "access_log_class": AccessLogger, "access_log": logging.getLogger("erapi.access"),
                      # aiohttp closes a connection still waiting for a complete request head at this point
                      "keepalive_timeout": config.server.header_timeout_seconds},
    )
    app[config_key] = config
    limits = config.ratelimit
    app[rate_limiter_key] = RateLimiter(limits.requests_per_second, limits.burst) if limits.enabled else None
    app.add_routes([route.definition() for route in ROUTES])
    # cleanup runs in reverse: workers stop before the storage they use is closed
    app.cleanup_ctx.extend([_schemas_and_catalog, _storage, _change_feed, _authenticator, _job_workers,
                            _webhook_delivery])
    return app


async def _schemas_and_catalog(app: web.Application) -> AsyncIterator[None]:
    app[catalog_key] = load_catalog()
    app[validator_key] = RequestValidator(load_schema_documents())
    app[page_tokens_key] = PageTokens(_paging_secret(app[config_key]))
    app[openapi_key] = orjson.dumps(build_document(OPERATIONS, version=installed_version()))
    yield


async def _storage(app: web.Application) -> AsyncIterator[None]:
    config = app[config_key]
    storage = MeteredStorage(create_storage(config.storage, config.storage_settings()))
    await storage.open()
    app[storage_key] = storage
    app[acl_key] = AccessControl(storage, config.acl.cache_ttl_seconds)
    app[idempotency_key] = Idempotency(storage, config.idempotency)
    logger.info("storage opened", plugin=config.storage)
    try:
        yield
    finally:
        await storage.close()


async def _change_feed(app: web.Application) -> AsyncIterator[None]:
    """The waits of long polls and read-your-writes, and the trimming of the feeds this process writes."""
    settings, storage = app[config_key].changes, app[storage_key]
    storage.change_gap_grace_seconds = settings.gap_grace_seconds
    app[change_notifier_key] = ChangeNotifier(storage, settings.poll_interval_seconds)
    trimming = asyncio.create_task(ChangeTrimmer(storage, settings.retention_seconds,
                                                 settings.trim_interval_seconds).run())
    try:
        yield
    finally:
        trimming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trimming


async def _authenticator(app: web.Application) -> AsyncIterator[None]:
    authenticator = create_authenticator(app[config_key].auth)
    await authenticator.open()
    app[authenticator_key] = authenticator
    try:
        yield
    finally:
        await authenticator.close()


async def _job_workers(app: web.Application) -> AsyncIterator[None]:
    config = app[config_key]
    services = Services(storage=app[storage_key], catalog=app[catalog_key], acl=app[acl_key])
    workers = [JobWorker(services, config.jobs) for _ in range(config.jobs.workers)]
    app[job_workers_key] = workers
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        # graceful: stop claiming, let the current chunk finish, else release it to other processes
        await asyncio.gather(*(worker.stop(config.server.shutdown_timeout) for worker in workers))


async def _webhook_delivery(app: web.Application) -> AsyncIterator[None]:
    config = app[config_key]
    if not config.webhooks.deliver:
        yield
        return
    worker = DeliveryWorker(app[storage_key], app[acl_key], config.webhooks, notifier=app[change_notifier_key])
    app[delivery_worker_key] = worker
    worker.start()
    try:
        yield
    finally:
        # graceful: each delivery finishes its attempt and hands its lease back to the other processes
        await worker.stop(config.server.shutdown_timeout)


def _paging_secret(config: Config) -> bytes:
    if config.server.paging_secret:
        return config.server.paging_secret.encode()
    if config.auth.mode == "local":
        # every process sharing the local secret accepts the others' continuation tokens
        return hashlib.sha256(b"erapi paging\0" + resolve_local_secret(config.auth).encode()).digest()
    logger.warning("server.paging_secret is not set: continuation tokens are valid only in this process")
    return secrets.token_bytes(32)
