"""The MongoDB plugin's subscriptions (storage_plugins/subscriptions.py): one document each in ``subscriptions``.

Keyed by (``ercollectionid``, ``id``) under a unique index, ``ercollectionid`` first like every per-collection key.
Mixed into MongoStorage: it uses that class's database handle and its guards (``_operation``,
``_one_update_at_a_time``), so driver errors become StorageError here too.
"""

from __future__ import annotations

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo import errors as mongo_errors

from storage_plugins.common import Document, DuplicateError, query_text
from storage_plugins.subscriptions import SubscriptionStore

SUBSCRIPTIONS = "subscriptions"
SUBSCRIPTION_INDEXES = [
    (SUBSCRIPTIONS, IndexModel([("ercollectionid", ASCENDING), ("id", ASCENDING)], name="collection_id", unique=True)),
    (SUBSCRIPTIONS, IndexModel([("state", ASCENDING), ("leaseExpiresAt", ASCENDING)], name="state_lease")),
]


def _key(collection_id: str, subscription_id: str) -> Document:
    return {"ercollectionid": query_text(collection_id, "collection id"),
            "id": query_text(subscription_id, "subscription id")}


def _returned(stored: Document | None) -> Document | None:
    if stored is not None:
        stored.pop("_id", None)
    return stored


class MongoSubscriptions(SubscriptionStore):
    async def create_subscription(self, record: Document) -> None:
        stored = {**record, **_key(record["ercollectionid"], record["id"]), "leaseOwner": None, "leaseExpiresAt": 0.0}
        with self._operation("creation of a subscription"):
            try:
                await self._db[SUBSCRIPTIONS].insert_one(stored)
            except mongo_errors.DuplicateKeyError as error:
                raise DuplicateError(f"subscription {record['id']} already exists") from error

    async def get_subscription(self, collection_id: str, subscription_id: str) -> Document | None:
        with self._operation("read of a subscription"):
            return _returned(await self._db[SUBSCRIPTIONS].find_one(_key(collection_id, subscription_id)))

    async def list_subscriptions(self, collection_id: str) -> list[Document]:
        with self._operation("list of subscriptions"):
            found = await self._db[SUBSCRIPTIONS].find({"ercollectionid": query_text(collection_id, "collection id")}) \
                .sort("id", ASCENDING).to_list()
        return [_returned(record) for record in found]

    async def delete_subscription(self, collection_id: str, subscription_id: str) -> bool:
        with self._operation("removal of a subscription"):
            async with self._one_update_at_a_time():
                result = await self._db[SUBSCRIPTIONS].delete_one(_key(collection_id, subscription_id))
        return result.deleted_count == 1

    async def update_subscription(self, collection_id: str, subscription_id: str, fields: Document,
                                  owner: str | None = None) -> bool:
        selector = _key(collection_id, subscription_id)
        if owner is not None:
            selector["leaseOwner"] = query_text(owner, "lease owner")
        changes = {key: value for key, value in fields.items() if key not in ("_id", "id", "ercollectionid")}
        with self._operation("update of a subscription"):
            async with self._one_update_at_a_time():
                result = await self._db[SUBSCRIPTIONS].update_one(selector, {"$set": changes})
        return result.matched_count == 1

    async def claim_subscription(self, owner: str, now: float, lease_seconds: float) -> Document | None:
        claimable = {"state": "active", "leaseExpiresAt": {"$lte": float(now)}}
        claim = {"$set": {"leaseOwner": query_text(owner, "lease owner"), "leaseExpiresAt": float(now + lease_seconds)}}
        with self._operation("claim of a subscription"):
            # No projection: FerretDB 1.24 does not implement findAndModify's "fields".
            async with self._one_update_at_a_time():
                claimed = await self._db[SUBSCRIPTIONS].find_one_and_update(
                    claimable, claim, sort=[("ercollectionid", ASCENDING), ("id", ASCENDING)],
                    return_document=ReturnDocument.AFTER)
        return _returned(claimed)
