"""The storage contract of the change log (storage_plugins/changes.py), checked against every plugin.

Part of the shared contract suite (tests/storage_contract/; tests/storage_fixtures.py says how a plugin joins):
every test takes the ``storage`` fixture and so runs once per plugin. Races between processes are made here by two plugin instances
on one database (the MongoDB backends) or by interleaved tasks (all backends).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from storage_plugins.base import VERSION_FIELD, create_storage
from storage_plugins.changes import grant_change

C = "feed_c1"


def relationship(rid: str, version: int = 1, active: bool = True) -> dict:
    return {"id": rid, "sourceEntityId": "a", "destinationEntityId": "b", "isActive": active,
            "relationshipType": "BRICK_0_4__isFedBy_Equipment_Equipment",
            "sysData": {VERSION_FIELD["relationships"]: version}}


async def claim_and_publish(storage, documents, collection_id=C, kind="relationships") -> int:
    claim = await storage.claim_versions(kind, collection_id, documents)
    assert claim.conflicted == []
    return await storage.publish(kind, collection_id, documents)


async def test_an_empty_collection_has_no_changes(storage):
    assert await storage.read_changes(C, 0, 100) == []
    assert await storage.latest_sequence(C) == 0
    assert await storage.first_sequence(C) == 0
    assert await storage.record_changes(C, []) == 0


async def test_publishing_records_each_version_in_order_with_its_operation(storage):
    assert await claim_and_publish(storage, [relationship("r1"), relationship("r2")]) == 2
    assert await claim_and_publish(storage, [relationship("r1", 2, active=False)]) == 3
    assert await claim_and_publish(storage, [relationship("r2", 2)]) == 4
    changes = await storage.read_changes(C, 0, 100)
    assert [(c["sequence"], c["kind"], c["id"], c["version"], c["operation"]) for c in changes] == [
        (1, "relationship", "r1", 1, "created"), (2, "relationship", "r2", 1, "created"),
        (3, "relationship", "r1", 2, "deactivated"), (4, "relationship", "r2", 2, "updated")]
    assert changes[2]["document"] == relationship("r1", 2, active=False)
    assert all(isinstance(c["time"], str) and c["time"].endswith("Z") for c in changes)
    assert await storage.latest_sequence(C) == 4
    assert (await storage.get_current("relationships", C, ["r1"]))["r1"]["isActive"] is False


async def test_sequences_are_per_collection_and_pages_resume_after_the_last_number(storage):
    await claim_and_publish(storage, [relationship(f"r{i}") for i in range(5)])
    await claim_and_publish(storage, [relationship("other")], collection_id="feed_c2")
    first = await storage.read_changes(C, 0, 2)
    rest = await storage.read_changes(C, first[-1]["sequence"], 100)
    assert [c["id"] for c in first + rest] == [f"r{i}" for i in range(5)]
    assert [c["sequence"] for c in await storage.read_changes("feed_c2", 0, 10)] == [1]


async def test_a_grant_is_a_change(storage):
    record = {"collectionId": C, "principal": "bob", "access": ["read"], "grantedBy": "alice", "updatedAt": "t"}
    await storage.put_grant(C, "bob", record)
    assert await storage.record_changes(C, [grant_change("bob", record)]) == 1
    revoked = {**record, "access": []}
    assert await storage.record_changes(C, [grant_change("bob", revoked)]) == 2
    changes = await storage.read_changes(C, 0, 10)
    assert [(c["kind"], c["id"], c["version"], c["operation"]) for c in changes] == [
        ("grant", "bob", None, "granted"), ("grant", "bob", None, "revoked")]
    assert changes[1]["document"] == revoked


async def test_a_version_published_twice_is_recorded_once_and_the_spare_number_is_skipped(storage):
    document = relationship("r1")
    await claim_and_publish(storage, [document])
    # a roll forward of the same version (its writer was slow, not dead) records nothing new
    assert await storage.publish("relationships", C, [document]) == 2
    await claim_and_publish(storage, [relationship("r2")])
    changes = await storage.read_changes(C, 0, 10)
    assert [(c["sequence"], c["id"]) for c in changes] == [(1, "r1"), (3, "r2")]
    assert await storage.read_changes(C, 1, 1) == [changes[1]]  # the void number does not use up the page


async def test_a_roll_forward_records_the_change_of_a_claimed_version(storage):
    document = relationship("r1")
    await storage.claim_versions("relationships", C, [document])  # its writer died before publishing
    assert await storage.read_changes(C, 0, 10) == []
    await storage.roll_forward("relationships", C, ["r1"])
    assert [(c["id"], c["version"]) for c in await storage.read_changes(C, 0, 10)] == [("r1", 1)]


async def test_a_number_claimed_by_a_writer_that_died_holds_the_feed_until_the_grace_period_ends(storage):
    dead = await storage._advance_counter(C, 1, 0)  # claimed, and its record never written
    await claim_and_publish(storage, [relationship("r1")])
    assert await storage.read_changes(C, 0, 10) == []  # r1 may not be returned while a lower number may appear
    assert await storage.read_changes(C, dead, 10) != []
    storage.change_gap_grace_seconds = 0
    changes = await storage.read_changes(C, 0, 10)
    assert [(c["sequence"], c["id"]) for c in changes] == [(dead + 1, "r1")]


async def test_a_slow_writer_whose_number_was_filled_records_its_change_under_a_new_number(storage):
    record = {"collectionId": C, "principal": "bob", "access": ["read"], "grantedBy": "a", "updatedAt": "t"}
    slow = grant_change("bob", record)
    await storage._insert_changes(C, [{"sequence": 1, "key": "void/1", "kind": "void", "id": "", "version": None,
                                       "operation": "void", "document": None, "time": slow["time"]}])
    assert await storage.record_changes(C, [slow]) == 2  # number 1 was taken: it claimed again
    assert [c["sequence"] for c in await storage.read_changes(C, 0, 10)] == [2]


async def test_concurrent_writers_get_distinct_numbers_without_gaps(storage, storage_settings, storage_backend):
    others = [storage]
    if storage_backend.plugin != "memory":  # a second plugin instance on the same database: another process
        other = create_storage(storage_backend.plugin, storage_settings)
        await other.open()
        others.append(other)
    try:
        async def writer(index: int, target) -> None:
            for batch in range(5):
                documents = [relationship(f"w{index}-{batch}-{item}") for item in range(3)]
                await claim_and_publish(target, documents)

        await asyncio.gather(*(writer(index, others[index % len(others)]) for index in range(6)))
    finally:
        for other in others[1:]:
            await other.close()
    changes = await storage.read_changes(C, 0, 1000)
    ids = [c["id"] for c in changes]
    assert len(ids) == 90 and len(set(ids)) == 90
    numbers = [c["sequence"] for c in changes]
    assert numbers == sorted(set(numbers))
    assert await storage.latest_sequence(C) >= numbers[-1]


async def test_trimming_keeps_the_newest_record_and_tells_from_where_the_feed_is_whole(storage):
    await claim_and_publish(storage, [relationship(f"r{i}") for i in range(4)])
    later = datetime.now(timezone.utc) + timedelta(seconds=60)
    assert await storage.trim_changes(C, later) == 3  # everything is older, but the newest record stays
    assert await storage.first_sequence(C) == 3
    assert [c["sequence"] for c in await storage.read_changes(C, 3, 10)] == [4]
    assert [c["sequence"] for c in await storage.read_changes(C, 0, 10)] == [4]  # what is left
    assert await claim_and_publish(storage, [relationship("r9")]) == 5  # numbers are never handed out again
    assert await storage.trim_changes(C, datetime.now(timezone.utc) - timedelta(days=1)) == 3  # nothing older


async def test_callers_may_change_what_they_recorded_and_what_they_read(storage):
    document = relationship("r1")
    await claim_and_publish(storage, [document])
    document["isActive"] = "changed"
    read = await storage.read_changes(C, 0, 10)
    read[0]["document"]["isActive"] = "changed too"
    assert (await storage.read_changes(C, 0, 10))[0]["document"]["isActive"] is True


async def test_listeners_hear_of_each_recorded_batch(storage):
    heard = []
    storage.add_change_listener(lambda collection_id, sequence: heard.append((collection_id, sequence)))
    await claim_and_publish(storage, [relationship("r1"), relationship("r2")])
    assert heard == [(C, 2)]


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_below_one_reads_nothing(storage, limit):
    await claim_and_publish(storage, [relationship("r1")])
    assert await storage.read_changes(C, 0, limit) == []
