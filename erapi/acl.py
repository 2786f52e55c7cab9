"""The ACL library: collection registrations and grants, read through a short-lived cache.

Registrations and grants are records in the storage plugin's log store. A process applies its own writes
to its cache at once; other processes see them when their cached entry expires (``acl.cache_ttl_seconds``),
which bounds how late a revocation takes effect there.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from erapi.clock import Clock
from erapi.errors import Conflict
from storage_plugins.base import Document, DuplicateError, GrantedCollections, Storage
from storage_plugins.changes import grant_change

READ = "read"
WRITE = "write"
MAX_CACHED_COLLECTIONS = 10_000  # anyone with a token can name collections: the cache must not grow without bound


@dataclass
class CollectionAcl:
    registration: Document | None
    grants: dict[str, frozenset[str]] = field(default_factory=dict)
    expires_at: float = 0.0

    @property
    def owner(self) -> str | None:
        return self.registration["owner"] if self.registration else None

    def access_of(self, principal: str) -> frozenset[str]:
        if self.registration is None:
            return frozenset()
        return self.grants.get(principal, frozenset())


class CollectionExists(Conflict):
    def __init__(self, collection_id: str):
        super().__init__(f"ERCollection {collection_id} already exists")


class AccessControl:
    def __init__(self, storage: Storage, ttl_seconds: float, clock: Clock = time.monotonic):
        self._storage = storage
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: OrderedDict[str, CollectionAcl] = OrderedDict()
        self._writes: dict[str, int] = {}  # per collection: how many ACL writes this process has made

    async def collection(self, collection_id: str) -> CollectionAcl:
        cached = self._cache.get(collection_id)
        if cached is not None and cached.expires_at > self._clock():
            self._cache.move_to_end(collection_id)
            return cached
        writes = self._writes.get(collection_id, 0)
        registration, grant_records = await self._storage.get_acl(collection_id)
        entry = CollectionAcl(
            registration=registration,
            grants={g["principal"]: frozenset(g["access"]) for g in grant_records},
            expires_at=self._clock() + self._ttl,
        )
        # a write of this process that landed during the read may be missing from it: caching the read would
        # hide that write from this process for a whole TTL
        if self._writes.get(collection_id, 0) == writes and self._ttl > 0:
            self._cache[collection_id] = entry
            self._cache.move_to_end(collection_id)
            while len(self._cache) > MAX_CACHED_COLLECTIONS:
                self._cache.popitem(last=False)
        return entry

    async def access(self, collection_id: str, principal: str) -> frozenset[str]:
        return (await self.collection(collection_id)).access_of(principal)

    async def access_to_many(self, collection_ids: Iterable[str], principal: str) -> dict[str, frozenset[str]]:
        return {cid: await self.access(cid, principal) for cid in set(collection_ids)}

    async def granted_collections(self, principal: str, after: str | None, limit: int) -> GrantedCollections:
        """A page of the collections ``principal`` holds a grant on, read from storage (not the cache): one call."""
        return await self._storage.list_granted_collections(principal, after, limit)

    async def register(self, registration: Document) -> int:
        """Store the registration and the owner's read+write grant; CollectionExists if already there. Returns
        the collection's sequence number after the grant (its first change)."""
        collection_id = registration["collectionId"]
        try:
            await self._storage.register_collection(registration)
        except DuplicateError as error:
            raise CollectionExists(collection_id) from error
        _, sequence = await self.grant(collection_id, registration["owner"], [READ, WRITE], registration["owner"],
                                       registration["createdAt"])
        self._cache.pop(collection_id, None)
        return sequence

    async def grant(self, collection_id: str, principal: str, access: Iterable[str], granted_by: str,
                    timestamp: str) -> tuple[Document, int]:
        """Store ``principal``'s grant and record it in the change feed (after it is stored: a process killed
        in between leaves that grant out of the feed); the record and the collection's sequence number."""
        record = {
            "collectionId": collection_id,
            "principal": principal,
            "access": sorted(set(access)),
            "grantedBy": granted_by,
            "updatedAt": timestamp,
        }
        await self._storage.put_grant(collection_id, principal, record)
        self._writes[collection_id] = self._writes.get(collection_id, 0) + 1
        cached = self._cache.get(collection_id)
        if cached is not None:
            cached.grants[principal] = frozenset(record["access"])
        return record, await self._storage.record_changes(collection_id, [grant_change(principal, record)])

    def forget(self, collection_id: str) -> None:
        """Drop the cached entry of a collection: the next check reads its grants from storage (a read that
        must reflect a write made through another process, see erapi/consistency.py)."""
        self._cache.pop(collection_id, None)
