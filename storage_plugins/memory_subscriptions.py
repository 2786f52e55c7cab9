"""The memory plugin's subscriptions (storage_plugins/subscriptions.py): one dict, as durable as the process."""

from __future__ import annotations

import copy

from storage_plugins.common import Document, DuplicateError
from storage_plugins.subscriptions import SubscriptionStore


class MemorySubscriptions(SubscriptionStore):
    """Mixed into MemoryStorage; its state is one dict keyed by (collection, id)."""

    @property
    def _subscriptions(self) -> dict[tuple[str, str], Document]:
        return self.__dict__.setdefault("_subscription_records", {})

    async def create_subscription(self, record: Document) -> None:
        key = (record["ercollectionid"], record["id"])
        if key in self._subscriptions:
            raise DuplicateError(f"subscription {record['id']} already exists")
        self._subscriptions[key] = {**copy.deepcopy(record), "leaseOwner": None, "leaseExpiresAt": 0.0}

    async def get_subscription(self, collection_id: str, subscription_id: str) -> Document | None:
        found = self._subscriptions.get((collection_id, subscription_id))
        return copy.deepcopy(found)

    async def list_subscriptions(self, collection_id: str) -> list[Document]:
        return [copy.deepcopy(record) for (held_in, _), record in sorted(self._subscriptions.items())
                if held_in == collection_id]

    async def delete_subscription(self, collection_id: str, subscription_id: str) -> bool:
        return self._subscriptions.pop((collection_id, subscription_id), None) is not None

    async def update_subscription(self, collection_id: str, subscription_id: str, fields: Document,
                                  owner: str | None = None) -> bool:
        record = self._subscriptions.get((collection_id, subscription_id))
        if record is None or (owner is not None and record["leaseOwner"] != owner):
            return False
        record.update({key: copy.deepcopy(value) for key, value in fields.items()
                       if key not in ("id", "ercollectionid")})
        return True

    async def claim_subscription(self, owner: str, now: float, lease_seconds: float) -> Document | None:
        for key in sorted(self._subscriptions):
            record = self._subscriptions[key]
            if record["state"] == "active" and record["leaseExpiresAt"] <= now:
                record.update(leaseOwner=owner, leaseExpiresAt=now + lease_seconds)
                return copy.deepcopy(record)
        return None
