"""AccessStore: the ACL library's records: collection registrations and the grants of principals."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from storage_plugins.common import Document


@dataclass(frozen=True)
class GrantedCollections:
    """One page of the collections a principal holds a grant on, and how many there are in all."""

    page: list[tuple[Document | None, Document]]  # (registration, grant record), by collectionId ascending
    total: int


class AccessStore(abc.ABC):
    """One registration per collection (who created it) and one grant per (collection, principal)."""

    @abc.abstractmethod
    async def register_collection(self, record: Document) -> None:
        """Store a collection registration (``collectionId`` unique). DuplicateError if it is registered."""

    @abc.abstractmethod
    async def put_grant(self, collection_id: str, principal: str, record: Document) -> None:
        """Store the grant of ``principal`` on a collection, replacing any earlier grant of that principal."""

    @abc.abstractmethod
    async def get_acl(self, collection_id: str) -> tuple[Document | None, list[Document]]:
        """The registration (or None when unregistered) and every grant of one collection, in no set order."""

    @abc.abstractmethod
    async def list_granted_collections(self, principal: str, after: str | None, limit: int) -> GrantedCollections:
        """The collections on which ``principal`` holds a grant with some access, each with its
        registration and that grant, ordered by ``collectionId`` (code-point order), only ids strictly greater
        than ``after`` (None: from the first), at most ``limit``. A grant whose access is empty (a revocation)
        does not count. ``total`` counts every such collection, whatever ``after`` and ``limit``. The
        registration is None for a grant on an unregistered collection (the ACL library never writes one).
        """

