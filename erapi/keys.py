"""Every piece of application state, each behind a typed AppKey."""

from __future__ import annotations

from aiohttp import web

from erapi.acl import AccessControl
from erapi.auth import Authenticator
from erapi.catalog import Catalog
from erapi.changes import ChangeNotifier
from erapi.config import Config
from erapi.delivery import DeliveryWorker
from erapi.idempotency import Idempotency
from erapi.jobs import JobWorker
from erapi.paging import PageTokens
from erapi.ratelimit import RateLimiter
from erapi.validation import RequestValidator
from storage_plugins.base import Storage

config_key = web.AppKey("config", Config)
storage_key = web.AppKey("storage", Storage)
catalog_key = web.AppKey("catalog", Catalog)
validator_key = web.AppKey("validator", RequestValidator)
acl_key = web.AppKey("acl", AccessControl)
authenticator_key = web.AppKey("authenticator", Authenticator)
page_tokens_key = web.AppKey("page_tokens", PageTokens)
openapi_key = web.AppKey("openapi", bytes)  # the OpenAPI document, serialised once at start-up
rate_limiter_key = web.AppKey("rate_limiter", RateLimiter | None)  # None: rate limiting is off
job_workers_key = web.AppKey("job_workers", list[JobWorker])
idempotency_key = web.AppKey("idempotency", Idempotency)  # answers of requests sent with an Idempotency-Key
change_notifier_key = web.AppKey("change_notifier", ChangeNotifier)  # long polls and read-your-writes wait on it
delivery_worker_key = web.AppKey("delivery_worker", DeliveryWorker)  # absent when webhooks.deliver is false
