"""Who asked what and how it went: the request id, each request's log context, one access-log line per request."""

from __future__ import annotations

import re
import uuid

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from erapi.metrics import record_request
from erapi.web import COLLECTION_ID

REQUEST_ID_HEADER = "X-Request-Id"
# what proxies and tracing systems send (UUIDs, hex, base64, AWS's "Root=1-...;Parent=...") and nothing that could
# break a log line or a header: no spaces, quotes, backslashes or control characters
REQUEST_ID = re.compile(r"[A-Za-z0-9._~:;/+=@-]{1,128}")
UNMATCHED = "unmatched"  # the route of a request no route answers (404, 405, a request the HTTP parser refused)
route_key = web.RequestKey("route", str)
logger = structlog.get_logger("erapi.access")


def request_id_of(request: web.Request) -> str:
    """The caller's X-Request-Id when it is well-formed, else a new one (a bad one is replaced, not refused)."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    return supplied if REQUEST_ID.fullmatch(supplied) else str(uuid.uuid4())


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def request_context_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Binds the request id and route to every log line of the request and returns the id to the caller.

    Handlers bind more as they learn it (principal, ercollectionid, transaction_id); the access line carries it all.
    """
    request_id = request_id_of(request)
    request[route_key] = route = route_template(request)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, method=request.method, route=route)
    # named by the header, or by the path on the collection routes; bound before any check can refuse the request
    collection_id = request.match_info.get("collectionId") or request.headers.get("ercollectionid", "")
    if COLLECTION_ID.match(collection_id):
        structlog.contextvars.bind_contextvars(ercollectionid=collection_id)
    try:
        response = await handler(request)
    except web.HTTPException as error:  # aiohttp's own bodiless answers, passed through by error_middleware
        error.headers[REQUEST_ID_HEADER] = request_id
        raise
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    # the access line names the transaction the caller was told of: a replayed answer (Idempotency-Key) names
    # the first request's, not the one this request began before it found the key
    transaction_id = response.headers.get("X-Transaction-Id")
    if transaction_id:
        structlog.contextvars.bind_contextvars(transaction_id=transaction_id)
    return response


class AccessLogger(AbstractAccessLogger):
    """aiohttp calls ``log`` (the access line and the request metrics) once per answered request, also for one the
    middlewares or the HTTP parser refused.

    It runs in the request's own task, after the response went out: the context the request bound is still there.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = request.get(route_key, UNMATCHED)
        record_request(request.method, route, response.status, time)
        logger.info("request", method=request.method, route=route, status=response.status,
                    duration_ms=round(time * 1000, 3))
