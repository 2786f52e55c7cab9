"""The storage of webhook subscriptions and their delivery state, shared by every service process.

A subscription is a document with ``id`` (unique within its ``ercollectionid``), ``state`` (``active`` or
``paused``) and the service's own fields (URL, filters, secret, the cursor ``lastDeliveredSequence``, failures,
recent attempts). The plugin manages the lease: ``leaseOwner`` (a delivery worker's id, None when free) and
``leaseExpiresAt`` (seconds since the epoch). Only the lease holder delivers a subscription and moves its
cursor; when its process dies the lease expires and another process claims the subscription, going on from the
stored cursor (a change delivered but not yet recorded is delivered again: at least once).
"""

from __future__ import annotations

import abc

from storage_plugins.common import Document


class SubscriptionStore(abc.ABC):
    @abc.abstractmethod
    async def create_subscription(self, record: Document) -> None:
        """Store a new subscription with a free lease. DuplicateError when its (collection, id) exists."""

    @abc.abstractmethod
    async def get_subscription(self, collection_id: str, subscription_id: str) -> Document | None:
        """The subscription, lease fields included, or None."""

    @abc.abstractmethod
    async def list_subscriptions(self, collection_id: str) -> list[Document]:
        """Every subscription of a collection, by ``id`` (code-point order); ``[]`` for none."""

    @abc.abstractmethod
    async def delete_subscription(self, collection_id: str, subscription_id: str) -> bool:
        """Remove the subscription; False when there was none. A worker delivering it finds it gone."""

    @abc.abstractmethod
    async def update_subscription(self, collection_id: str, subscription_id: str, fields: Document,
                                  owner: str | None = None) -> bool:
        """Set ``fields`` (top-level, lease fields included) on the subscription; with ``owner``, only while that
        worker holds its lease. False (and no change) when it is absent or, with ``owner``, held by another or
        free. ``id`` and ``ercollectionid`` never change."""

    @abc.abstractmethod
    async def claim_subscription(self, owner: str, now: float, lease_seconds: float) -> Document | None:
        """Take one ``active`` subscription whose lease is free or expired at ``now``: it becomes ``owner``'s
        until ``now + lease_seconds`` and is returned in that state. None when there is none. On a server whose
        updates are not atomic (FerretDB 1.x) two processes may both take one at the same instant: both deliver,
        which at-least-once allows."""
