"""Helpers for the tests of lists, paging, deletes and stats: one page, a whole walk, seeding in bulk."""

from __future__ import annotations

from typing import Any

from erapi.keys import storage_key
from tests.api_fixtures import RELATIONSHIP_TYPE, Api

def list_schema(path: str) -> str:
    return "relationship-list" if path.endswith("/relationships") or "/relationships/" in path else "entity-list"


async def page(api: Api, path: str, collection: str | None, *, size: int | str | None = None,
               token: str | None = None, params: dict | None = None, expect: int = 200) -> dict:
    headers = {}
    if size is not None:
        headers["PageSize"] = str(size)
    if token is not None:
        headers["continuationToken"] = token
    return await api.call("GET", path, expect, collection=collection, headers=headers, params=params,
                          schema=list_schema(path) if expect == 200 else None)


async def walk(api: Api, path: str, collection: str, size: int, params: dict | None = None) -> list[dict]:
    """Every item of every page, following the tokens; each page but the last is full."""
    items: list[dict] = []
    token = None
    while True:
        body = await page(api, path, collection, size=size, token=token, params=params)
        items.extend(body["data"])
        token = body["paging"]["continuationToken"]
        if token is None:
            return items
        assert len(body["data"]) == size


def stored_entity(entity_id: str, entity_type: str = "BRICK_0_4__AHU") -> dict:
    """An entity as the service stores it (derived fields and sysData included)."""
    return {"id": entity_id, "entityType": entity_type, "entityName": entity_id,
            "brickEntityType": "BRICK_0_4__Equipment", "brickEntitySubType": entity_type, "isActive": True,
            "sysData": {"sysEntityVersion": 1, "sysCreatedAt": "2026-11-27T05:00:00.000000Z",
                        "sysCreatedBy": "seed", "sysUpdatedAt": "2026-11-27T05:00:00.000000Z",
                        "sysUpdatedBy": "seed", "sysTransactionId": "seed"}}


def stored_relationship(relationship_id: str, collection: str, source: str, destination: str,
                        destination_collection: str | None = None) -> dict:
    """A relationship as the service stores it."""
    return {"id": relationship_id, "sourceEntityId": source, "destinationEntityId": destination,
            "relationshipName": "test", "relationshipType": RELATIONSHIP_TYPE,
            "sourceERCollectionId": collection, "destinationERCollectionId": destination_collection or collection,
            "brickRelationshipName": "isFedBy", "brickRelationshipType": "BRICK_0_4__isFedBy", "isActive": True,
            "sysData": {"sysRelationshipVersion": 1, "sysCreatedAt": "2026-11-27T05:00:00.000000Z",
                        "sysCreatedBy": "seed", "sysUpdatedAt": "2026-11-27T05:00:00.000000Z",
                        "sysUpdatedBy": "seed", "sysTransactionId": "seed"}}


async def seed(api: Api, kind: str, collection: str, documents: list[dict[str, Any]], chunk: int = 1000) -> None:
    """Store documents straight through the plugin, as the upsert path does (claim, then publish)."""
    storage = api.client.app[storage_key]
    for start in range(0, len(documents), chunk):
        batch = documents[start:start + chunk]
        claim = await storage.claim_versions(kind, collection, batch)
        assert not claim.conflicted
        await storage.put_current(kind, collection, batch)
