"""What the contract tests build their documents and records with: plain dicts shaped like the service's own."""

from __future__ import annotations

import uuid

RELATIONSHIP_TYPE = "BRICK_0_4__isFedBy_Equipment_Equipment"


def entity(entity_id: str, version: int, **extra) -> dict:
    return {
        "id": entity_id,
        "entityType": "BRICK_0_4__AHU",
        "entityName": f"AHU {entity_id}",
        "brickEntityType": "BRICK_0_4__Equipment",
        "brickEntitySubType": "BRICK_0_4__AHU",
        "isActive": True,
        "sysData": {"sysEntityVersion": version, "sysCreatedAt": "2026-11-27T05:00:00.000000Z"},
        **extra,
    }


def relationship(relationship_id: str, version: int, **extra) -> dict:
    return {
        "id": relationship_id,
        "relationshipType": RELATIONSHIP_TYPE,
        "relationshipName": "supply air",
        "sourceEntityId": "ac4d999e-3798-11e8-a1af-c8e0eb18b031",
        "destinationEntityId": "ac4d8cd8-3798-11e8-a527-c8e0eb18b031",
        "sourceERCollectionId": "c1",
        "destinationERCollectionId": "c2",
        "brickRelationshipName": "isFedBy",
        "brickRelationshipType": "BRICK_0_4__isFedBy",
        "isActive": True,
        "sysData": {"sysRelationshipVersion": version, "sysCreatedAt": "2026-11-27T05:00:00.000000Z"},
        **extra,
    }


MAKERS = {"entities": entity, "relationships": relationship}


def doc(kind: str, document_id: str, version: int, **extra) -> dict:
    return MAKERS[kind](document_id, version, **extra)


def at(minute: int, second: int = 0) -> str:
    return f"2026-11-27T05:{minute:02d}:{second:02d}.000000Z"


def status_record(
    record_id: str | None = None,
    *,
    collection: str = "c1",
    transaction: str = "t1",
    correlation: str | None = "k1",
    relationship_id: str | None = "r1",
    entity_id: str | None = None,
    received: str = at(0),
) -> dict:
    return {
        "id": record_id or str(uuid.uuid4()),
        "transactionId": transaction,
        "correlationId": correlation,
        "requestAction": "Upsert",
        "requestObject": "Relationship" if relationship_id else "Entity",
        "state": "Completed",
        "message": "Relationship upserted successfully",
        "serviceData": {"erCollectionId": collection, "entityId": entity_id, "relationshipId": relationship_id},
        "receivedTimestamp": received,
        "stateHistory": [
            {"timestamp": received, "unixTimestamp": 1795755600.0, "state": "Requested"},
            {"timestamp": received, "unixTimestamp": 1795755600.1, "state": "Completed"},
        ],
    }


def ordered(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda record: (record["receivedTimestamp"], record["id"]))


async def store(storage, kind: str, collection: str, *documents: dict) -> None:
    """Claim and publish, as the service does."""
    claim = await storage.claim_versions(kind, collection, list(documents))
    assert claim.conflicted == []
    await storage.put_current(kind, collection, list(documents))
