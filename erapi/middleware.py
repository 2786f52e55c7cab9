"""The one error path: every failure leaves as the contract's envelope; the unexpected is logged, never shown."""

from __future__ import annotations

import structlog
from aiohttp import web

from erapi.errors import (
    ClientDisconnected,
    Conflict,
    Forbidden,
    Gone,
    HeadersTooLarge,
    InvalidRequest,
    NotAcceptable,
    NotFound,
    NotYet,
    PayloadTooLarge,
    PreconditionFailed,
    RequestTimeout,
    ServiceError,
    TooManyRequests,
    Unauthenticated,
    UnreadableBody,
    Unprocessable,
    UnsupportedMediaType,
)
from erapi.keys import config_key
from erapi.routes import route_of
from erapi.web import check_query_names, envelope
from storage_plugins.base import StorageError

logger = structlog.get_logger("erapi.http")

# The one mapping from a refusal to its HTTP status; the envelope's code is the status as text. A subclass
# answers as its nearest listed base (RequestTimeout is an UnreadableBody, hence an InvalidRequest, but 408).
HTTP_STATUS: dict[type[ServiceError], int] = {
    InvalidRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    NotAcceptable: 406,
    RequestTimeout: 408,
    Conflict: 409,
    PreconditionFailed: 412,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    Unprocessable: 422,
    TooManyRequests: 429,
    HeadersTooLarge: 431,
    Gone: 410,
    NotYet: 503,
}


def http_status(error: ServiceError) -> int:
    return next(HTTP_STATUS[cls] for cls in type(error).__mro__ if cls in HTTP_STATUS)


def http_headers(error: ServiceError) -> dict[str, str]:
    """The headers a refusal's answer carries: how to authenticate, or when to come back."""
    if isinstance(error, Unauthenticated):
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if error.retry_after is not None:
        return {"Retry-After": str(error.retry_after)}
    return {}


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    response = await _answer(request, handler)
    if response.status == 503:  # storage down, or not ready: every such answer says when to come back
        response.headers.setdefault("Retry-After", str(request.app[config_key].server.retry_after_seconds))
    return response


async def _answer(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnreadableBody as error:
        if isinstance(error, ClientDisconnected):
            # the answer will most likely reach no one; what operators need is what happened
            logger.warning("client disconnected", reason=error.message)
        response = envelope(http_status(error), error.message)
        # the rest of the body may still be on the wire: no next request can follow it on this connection.
        # Marked read, the body is not drained either (aiohttp would wait for a slow client, or re-raise
        # a broken stream's error and log it as an unhandled exception)
        response.force_close()
        request.content.feed_eof()
        return response
    except ServiceError as error:
        response = envelope(http_status(error), error.message, **({"errors": error.errors} if error.errors else {}))
        response.headers.update(http_headers(error))
        return response
    except web.HTTPException as error:
        # aiohttp's own refusals (unknown route, wrong method, body too large) in our envelope
        if error.empty_body:
            raise
        response = envelope(error.status, error.reason)
        for name in ("Allow", "Retry-After"):
            if name in error.headers:
                response.headers[name] = error.headers[name]
        return response
    except StorageError:
        logger.exception("storage unavailable")
        return envelope(503, "The storage backend is unavailable; retry later")
    except Exception:
        logger.exception("unhandled error")
        return envelope(500, "Internal server error")


@web.middleware
async def request_limits_middleware(request: web.Request, handler) -> web.StreamResponse:
    """431 for oversized headers; 400 for a query parameter the route's operation does not take, on every route
    and before anything else is checked (a misspelt filter or option would otherwise be ignored)."""
    limit = request.app[config_key].server.max_header_bytes
    size = sum(len(name) + len(value) for name, value in request.raw_headers)
    if size > limit:
        raise HeadersTooLarge(f"The request headers exceed the limit of {limit} bytes")
    if request.query_string and request.match_info.http_exception is None:
        resource = request.match_info.route.resource
        route = route_of(request.method, resource.canonical) if resource is not None else None
        if route is not None:
            check_query_names(request, route.operation.query_names, case_insensitive=route.query_names_any_case)
    return await handler(request)


@web.middleware
async def no_store_middleware(request: web.Request, handler) -> web.StreamResponse:
    response = await handler(request)
    if "Authorization" in request.headers:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
