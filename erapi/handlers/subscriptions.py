"""Webhook subscriptions of a collection: create (URL checked against the allow-list), list, read, delete, resume.

Every operation needs the collection's owner or a write grant: a subscription sends the collection's changes
to a URL of the caller's choosing, and its state shows that URL.
"""

from __future__ import annotations

from aiohttp import web

from erapi.acl import WRITE
from erapi.allowlist import TargetPolicy, TargetRefused
from erapi.timestamps import utc_timestamp
from erapi.consistency import reflect_sequences
from erapi.errors import Conflict, Forbidden, InvalidRequest, NotFound, shown
from erapi.keys import acl_key, catalog_key, config_key, delivery_worker_key, storage_key
from erapi.logs import audit
from erapi.subscriptions import PAUSED, new_subscription, public_view, resumed
from erapi.web import COLLECTION_ID, READ_SCOPE, WRITE_SCOPE, authorize, envelope, read_json, validate


async def create_subscription(request: web.Request) -> web.Response:
    collection_id, principal = await _subscriber(request, WRITE_SCOPE)
    body = await read_json(request)
    validate(request, "subscription-request", body)
    _check_types(request, body.get("filters", {}).get("types", ()))
    await _check_target(request, body["url"])
    storage, settings = request.app[storage_key], request.app[config_key].webhooks
    if len(await storage.list_subscriptions(collection_id)) >= settings.max_per_collection:
        raise Conflict(f"ERCollection {collection_id} already has {settings.max_per_collection} subscriptions, the "
                       f"most it may hold (webhooks.max_per_collection); delete one first")
    latest = await storage.latest_sequence(collection_id)
    start_after = body.get("startAfter", latest)
    if start_after > latest:
        raise InvalidRequest(f"startAfter {start_after} is beyond the collection's latest sequence number {latest}")
    record = new_subscription(collection_id, body, principal, utc_timestamp(), start_after)
    await storage.create_subscription(record)
    audit("subscription created", subscription=record["id"], url=record["url"], start_after=start_after)
    _wake_delivery(request)
    return envelope(201, "Subscription created", data=public_view(record))


async def list_subscriptions(request: web.Request) -> web.Response:
    collection_id, _ = await _subscriber(request, READ_SCOPE, WRITE_SCOPE)
    found = await request.app[storage_key].list_subscriptions(collection_id)
    return envelope(200, "", data=[public_view(record) for record in found],
                    paging={"totalCount": len(found), "continuationToken": None})


async def get_subscription(request: web.Request) -> web.Response:
    collection_id, _ = await _subscriber(request, READ_SCOPE, WRITE_SCOPE)
    return envelope(200, "", data=public_view(await _existing(request, collection_id)))


async def delete_subscription(request: web.Request) -> web.Response:
    collection_id, _ = await _subscriber(request, WRITE_SCOPE)
    record = await _existing(request, collection_id)
    if not await request.app[storage_key].delete_subscription(collection_id, record["id"]):
        raise NotFound(f"Subscription {record['id']} not found in ERCollection {collection_id}")
    audit("subscription deleted", subscription=record["id"])
    return envelope(200, "Subscription deleted", data=public_view(record))


async def resume_subscription(request: web.Request) -> web.Response:
    """A paused subscription becomes active again and is retried from where it stopped (or after the changes
    retention trimmed meanwhile); an active one is left as it is. The URL is checked again: the allow-list may
    have changed since it was created."""
    collection_id, _ = await _subscriber(request, WRITE_SCOPE)
    record = await _existing(request, collection_id)
    if record["state"] == PAUSED:
        await _check_target(request, record["url"])
        storage = request.app[storage_key]
        # paused because retention trimmed changes it never got: those are gone, it goes on after them
        fields = resumed(record, await storage.first_sequence(collection_id))
        if not await storage.update_subscription(collection_id, record["id"], fields):
            raise NotFound(f"Subscription {record['id']} not found in ERCollection {collection_id}")
        record.update(fields)
        audit("subscription resumed", subscription=record["id"])
        _wake_delivery(request)
    return envelope(200, "Subscription active", data=public_view(record))


async def _subscriber(request: web.Request, *scopes: str) -> tuple[str, str]:
    """The path's collection and the caller, once it proved to be the owner or to hold a write grant."""
    principal = await authorize(request, *scopes)
    collection_id = request.match_info["collectionId"]
    if not COLLECTION_ID.match(collection_id):
        raise InvalidRequest(f"{shown(collection_id)} is not a valid ERCollection id")
    await reflect_sequences(request, collection_id)  # X-ER-Sequence: read your writes, as every grant check does
    acl = await request.app[acl_key].collection(collection_id)
    if acl.owner != principal.subject and WRITE not in acl.access_of(principal.subject):
        raise Forbidden(f"ERCollection {collection_id} is not registered or the caller is neither its owner nor "
                        f"holds a write grant on it")
    return collection_id, principal.subject


async def _existing(request: web.Request, collection_id: str) -> dict:
    subscription_id = request.match_info["subscriptionId"]
    record = await request.app[storage_key].get_subscription(collection_id, subscription_id)
    if record is None:
        raise NotFound(f"Subscription {shown(subscription_id)} not found in ERCollection {collection_id}")
    return record


def _check_types(request: web.Request, names: list[str]) -> None:
    catalog = request.app[catalog_key]
    unknown = [name for name in names if catalog.entity_type(name) is None and catalog.relationship_type(name) is None]
    if unknown:
        raise InvalidRequest(f"Unknown entity or relationship type {shown(unknown[0])} in filters.types",
                             errors=[{"path": f"/filters/types/{names.index(unknown[0])}",
                                      "message": "not in the entity or relationship type catalog"}])


async def _check_target(request: web.Request, url: str) -> None:
    try:
        await TargetPolicy(request.app[config_key].webhooks.allowed_targets).check(url)
    except TargetRefused as error:
        raise (Forbidden if error.status == 403 else InvalidRequest)(
            str(error), errors=[{"path": "/url", "message": str(error)}]) from error


def _wake_delivery(request: web.Request) -> None:
    worker = request.app.get(delivery_worker_key)
    if worker is not None:
        worker.wake()
