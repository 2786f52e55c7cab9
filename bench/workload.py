"""The benchmark's workload: one building collection, 200 AHUs, and 100-relationship batches of new ids.

A batch is shaped like the contract's example (the same fields and collection, both collection fields set):
33 KB of JSON for 100 items. It is kept as a *template* in which two placeholders make every id unique:

- ``{C}``, the request counter scrambled (times 2654435761 modulo 2**32, a bijection), 8 hex digits, changed
  for every request: like the time field that leads a version-1 UUID, it spreads new ids over the whole
  sort order instead of appending them, as real clients' ids do;
- ``{T}``, the tag, 4 hex digits: a phase byte (each load phase of a run has its own) and the load
  generator's thread number, set once per thread.

An id reads ``CCCCCCCC-IIII-11e8-ae2c-c8e0eb18PPTT`` (I: the item's index): UUID-shaped and unique per
(phase, thread, request, item). Both placeholders have a fixed width, so every body has the same length.
"""

from __future__ import annotations

import uuid

import orjson

COLLECTION = "august_14_81"  # the contract example's collection
RELATIONSHIP_TYPE = "BRICK_0_4__isFedBy_Equipment_Equipment"
ENTITY_TYPE = "BRICK_0_4__AHU"
AHU_COUNT = 200
ITEMS_PER_REQUEST = 100
COUNTER, TAG = "{C}", "{T}"

# Phase bytes: a new service process starts empty, so ids need to be unique within one process only.
PHASE_PROBE = 0xFF
PHASE_PRELOAD = 0xFE


def ahu_ids() -> list[str]:
    return [str(uuid.UUID(int=0xAC4D0000_3798_11E8_A1AF_C8E0EB180000 + i)) for i in range(AHU_COUNT)]


def entity_batches(batch_size: int = 100) -> list[list[dict]]:
    entities = [
        {"id": ahu, "entityType": ENTITY_TYPE, "entityName": f"AHU-{index:03d}"}
        for index, ahu in enumerate(ahu_ids())
    ]
    return [entities[i:i + batch_size] for i in range(0, len(entities), batch_size)]


def relationship_template(items: int = ITEMS_PER_REQUEST, collection: str = COLLECTION) -> str:
    ahus = ahu_ids()
    batch = []
    for index in range(items):
        source, destination = (index * 7) % AHU_COUNT, (index * 13 + 1) % AHU_COUNT
        batch.append({
            "id": f"{COUNTER}-{index:04x}-11e8-ae2c-c8e0eb18{TAG}",
            "sourceEntityId": ahus[source],
            "destinationEntityId": ahus[destination],
            "relationshipName": "test",
            "relationshipType": RELATIONSHIP_TYPE,
            "sourceERCollectionId": collection,
            "destinationERCollectionId": collection,
        })
    return orjson.dumps(batch).decode()


def tag(phase: int, thread: int = 0) -> str:
    return f"{phase:02x}{thread:02x}"


def scramble(counter: int) -> int:
    """Knuth's multiplicative hash: unique per counter below 2**32 (bench/wrk_body.lua does the same)."""
    return (counter * 2654435761) % 2**32


def render(template: str, counter: int, tag_text: str) -> bytes:
    return template.replace(TAG, tag_text).replace(COUNTER, f"{scramble(counter):08x}").encode()


def relationship_id(counter: int, index: int, tag_text: str) -> str:
    return f"{scramble(counter):08x}-{index:04x}-11e8-ae2c-c8e0eb18{tag_text}"
