"""What every handler needs from a request: the principal, the collection, the body; and the envelope out."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.web_protocol import RequestPayloadError

from erapi.acl import READ, WRITE
from erapi.auth import READ_SCOPE, WRITE_SCOPE, Principal
from erapi.errors import (
    ClientDisconnected,
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
    UnreadableBody,
    UnsupportedMediaType,
)
from erapi.consistency import reflect_sequences
from erapi.keys import acl_key, authenticator_key, config_key, rate_limiter_key, validator_key
from erapi.kinds import Kind
from erapi.validation import NestedTooDeep

COLLECTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote() leaves as it is (RFC 3986 unreserved)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def envelope(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"status": {"message": message, "code": str(status)}, **extra}, status)


async def authorize(request: web.Request, *scopes: str) -> Principal:
    """The caller, authenticated, within its rate limit, holding one of ``scopes``: else 401, 429 or 403."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("A bearer token is required")
    principal = await request.app[authenticator_key].authenticate(token.strip())  # AuthenticationError: 401
    structlog.contextvars.bind_contextvars(principal=principal.subject)
    limiter = request.app[rate_limiter_key]
    if limiter is not None:
        limiter.check(principal.subject)
    if not principal.scopes.intersection(scopes):
        raise Forbidden(f"The token lacks the scope {' or '.join(scopes)}")
    return principal


def collection_header(request: web.Request) -> str:
    collection_id = request.headers.get("ercollectionid")
    if not collection_id:
        raise InvalidRequest("The ercollectionid header is required")
    if not COLLECTION_ID.match(collection_id):
        raise InvalidRequest("The ercollectionid header is not a valid ERCollection id")
    structlog.contextvars.bind_contextvars(ercollectionid=collection_id)
    return collection_id


async def require_access(request: web.Request, collection_id: str, principal: Principal, access: str) -> None:
    """403 unless the collection is registered and the principal holds ``access`` on it.

    The message is the same for an unregistered collection and a missing grant, so a stranger cannot
    probe which collections exist. A request that names sequence numbers (X-ER-Sequence) first waits until
    this process reflects them (erapi/consistency.py).
    """
    await reflect_sequences(request, collection_id)
    granted = await request.app[acl_key].access(collection_id, principal.subject)
    if access not in granted:
        raise Forbidden(f"ERCollection {collection_id} is not registered or the caller has no {access} grant on it")


async def require_any_access(request: web.Request, collection_id: str, principal: Principal) -> None:
    await reflect_sequences(request, collection_id)
    granted = await request.app[acl_key].access(collection_id, principal.subject)
    if not granted.intersection({READ, WRITE}):
        raise Forbidden(f"ERCollection {collection_id} is not registered or the caller has no grant on it")


def async_requested(request: web.Request) -> bool:
    value = request.headers.get("async", "false").lower()
    if value not in {"true", "false"}:
        raise InvalidRequest("The async header must be true or false")
    return value == "true"


async def read_json(request: web.Request) -> Any:
    """The parsed JSON body: 415 for another content type, 413 over the byte limit, 400 if not JSON."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    limit = request.app[config_key].server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes")
    timeout = request.app[config_key].server.body_timeout_seconds
    try:
        # aiohttp bounds the time to the head, not the body; a body that has arrived whole needs no timer
        async with asyncio.timeout(None if request.content.is_eof() else timeout):
            body = await request.read()  # aiohttp stops reading past client_max_size (the same limit)
    except TimeoutError as error:
        raise RequestTimeout(f"The request body did not arrive within {timeout:g} seconds") from error
    except web.HTTPRequestEntityTooLarge as error:
        raise PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes") from error
    except RequestPayloadError as error:
        if isinstance(error.__cause__, ContentEncodingError):
            encoding = request.headers.get("Content-Encoding", "").strip().lower()
            raise UnreadableBody(f"The request body is not valid {encoding} data") from error
        # the body ended before its Content-Length, or its chunked framing is broken
        raise ClientDisconnected(f"The request body is incomplete: {error.__cause__ or error}") from error
    except ConnectionResetError as error:
        raise ClientDisconnected("The client closed the connection before the body was complete") from error
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"The request body is not valid JSON: {error.msg}") from error


def validate(request: web.Request, schema_name: str, instance: Any) -> None:
    try:
        errors = request.app[validator_key].errors(schema_name, instance)
    except NestedTooDeep as error:
        raise InvalidRequest(str(error), errors=[{"path": error.path, "message": str(error)}]) from error
    if errors:
        raise InvalidRequest("The request body does not match its schema", errors=errors)


def base_url(request: web.Request) -> str:
    public = request.app[config_key].server.public_url
    return public.rstrip("/") if public else f"{request.scheme}://{request.host}"


def tracker_url(request: web.Request, kind: Kind, item_id: str, transaction_id: str) -> str:
    return Trackers(request, kind, transaction_id).urls([item_id])[0]


class Trackers:
    """The tracker URLs of the items of one transaction: what all of them share is built once."""

    def __init__(self, request: web.Request, kind: Kind, transaction_id: str) -> None:
        self.prefix = f"{base_url(request)}/apollo/status/logs?{kind.tracker_parameter}="  # then the item's id
        self.suffix = f"&transactionid={transaction_id}"

    def urls(self, item_ids: list[str]) -> list[str]:
        prefix, suffix = self.prefix, self.suffix
        if all_unreserved(item_ids):
            return [f"{prefix}{item_id}{suffix}" for item_id in item_ids]
        return [f"{prefix}{item_id if UNRESERVED.fullmatch(item_id) else quote(item_id, safe='')}{suffix}"
                for item_id in item_ids]


def all_unreserved(texts: list[str]) -> bool:
    """Whether every text is of unreserved characters only, which neither a URL nor JSON escapes: one match of them
    all (the class repeats: the whole matches iff each does). Most ids are."""
    return UNRESERVED.fullmatch("".join(texts)) is not None


def check_query_names(request: web.Request, allowed: frozenset[str] | tuple[str, ...], case_insensitive: bool = False) -> None:
    """400 for a query parameter the operation does not take: a misspelt filter must never be silently ignored
    nor widen a list. ``case_insensitive``: any spelling of a documented name is that name (status tracker)."""
    fold = str.lower if case_insensitive else str
    known = {fold(name) for name in allowed}
    unknown = sorted(name for name in request.query if fold(name) not in known)
    if unknown:
        raise InvalidRequest(f"Unknown query parameter {unknown[0]}: this operation takes "
                             f"{', '.join(sorted(allowed)) or 'no query parameters'}")


def boolean_query(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name, str(default)).lower()
    if value not in {"true", "false"}:
        raise InvalidRequest(f"The query parameter {name} must be true or false")
    return value == "true"
