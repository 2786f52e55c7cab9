"""ERCollections and their grants: the ACL library's only way in."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web

from erapi.acl import READ, WRITE
from erapi.consistency import with_sequences
from erapi.errors import Forbidden, InvalidRequest, NotFound, shown
from erapi.handlers.reads import open_token, page_headers
from erapi.keys import acl_key, page_tokens_key
from erapi.logs import audit
from erapi.timestamps import utc_timestamp
from erapi.web import READ_SCOPE, WRITE_SCOPE, authorize, envelope, read_json, validate

COLLECTIONS_LIST = {"list": "collections"}  # what a continuation token of this list is bound to, with the caller


async def create_collection(request: web.Request) -> web.Response:
    principal = await authorize(request, WRITE_SCOPE)
    body = await read_json(request)
    validate(request, "collection-request", body)
    now = utc_timestamp()
    registration = {
        "collectionId": body.get("collectionId") or str(uuid.uuid4()),
        "collectionName": body.get("collectionName", ""),
        "owner": principal.subject,
        "createdAt": now,
    }
    sequence = await request.app[acl_key].register(registration)  # CollectionExists: 409
    structlog.contextvars.bind_contextvars(ercollectionid=registration["collectionId"])
    audit("collection registered", owner=principal.subject, collection_name=registration["collectionName"],
          access=[READ, WRITE])
    return with_sequences(envelope(201, "ERCollection registered", data=registration),
                          {registration["collectionId"]: sequence})


async def list_collections(request: web.Request) -> web.Response:
    """The collections the caller holds a grant on, in collectionId order, paged like every list; the token is
    bound to the caller, so another principal cannot continue the walk."""
    principal = await authorize(request, READ_SCOPE)
    size, token = page_headers(request)
    after = open_token(request, token, principal.subject, COLLECTIONS_LIST)
    if after is not None and not isinstance(after, str):
        raise InvalidRequest("continuationToken was issued for another collection or query")
    found = await request.app[acl_key].granted_collections(principal.subject, after, size + 1)
    page = found.page[:size]
    next_token = None
    if len(found.page) > size:
        last = page[-1][1]["collectionId"]
        next_token = request.app[page_tokens_key].issue(principal.subject, COLLECTIONS_LIST, last)
    # the ACL library registers a collection before its first grant: a grant alone has nothing to show
    data = [{**registration, "access": grant["access"]} for registration, grant in page if registration is not None]
    return envelope(200, "", data=data, paging={"totalCount": found.total, "continuationToken": next_token})


async def get_collection(request: web.Request) -> web.Response:
    principal = await authorize(request, READ_SCOPE)
    acl = await _registered(request)
    if not acl.access_of(principal.subject):
        raise Forbidden(f"The caller has no grant on ERCollection {shown(request.match_info['collectionId'])}")
    return envelope(200, "", data=acl.registration)


async def put_grant(request: web.Request) -> web.Response:
    principal = await authorize(request, WRITE_SCOPE)
    acl = await _owned_by(request, principal.subject)
    body = await read_json(request)
    validate(request, "acl-request", body)
    grantee = body["principal"]
    previous = acl.grants.get(grantee, frozenset())
    record, sequence = await request.app[acl_key].grant(
        acl.registration["collectionId"], grantee, body["access"], principal.subject, utc_timestamp()
    )
    audit("grant changed", grantee=grantee, access=record["access"],
          granted=sorted(set(record["access"]) - previous), revoked=sorted(previous - set(record["access"])))
    return with_sequences(envelope(200, "Grant updated", data=record), {acl.registration["collectionId"]: sequence})


async def get_grants(request: web.Request) -> web.Response:
    principal = await authorize(request, READ_SCOPE)
    acl = await _owned_by(request, principal.subject)
    grants = [
        {"principal": name, "access": sorted(access)} for name, access in sorted(acl.grants.items()) if access
    ]
    return envelope(200, "", data={"collectionId": acl.registration["collectionId"], "owner": acl.owner,
                                   "grants": grants})


async def _registered(request: web.Request):
    collection_id = request.match_info["collectionId"]
    acl = await request.app[acl_key].collection(collection_id)
    if acl.registration is None:
        raise NotFound(f"ERCollection {shown(collection_id)} not found")
    return acl


async def _owned_by(request: web.Request, subject: str):
    acl = await _registered(request)
    if acl.owner != subject:
        raise Forbidden("Only the owner of an ERCollection may read or change its grants")
    return acl


