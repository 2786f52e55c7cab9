"""An upsert whose content equals the current version writes no new version, and says so (every client)."""

from __future__ import annotations

from tests.api_fixtures import entity, relationship
from tests.test_jobs import FAST_JOBS, all_records, submit, wait_for_job

COLLECTION = "c1"
UNCHANGED = "Relationship upserted successfully (unchanged: no new version written)"


async def versions(api, path: str) -> list[int]:
    body = await api.call("GET", path, 200, collection=COLLECTION)
    return [v["sysData"].get("sysRelationshipVersion", v["sysData"].get("sysEntityVersion")) for v in body["data"]]


async def test_resending_a_relationship_unchanged_writes_no_version_and_marks_the_entry(api):
    await api.register(COLLECTION)
    await api.entities(COLLECTION, [entity("a"), entity("b")])
    await api.relationships(COLLECTION, relationship("r1", "a", "b"))
    body = await api.relationships(COLLECTION, [relationship("r1", "a", "b"), relationship("r2", "a", "b")])
    assert body["status"]["message"] == "Total number of Relationships Upserted:  2."  # unchanged items count
    first, second = body["data"]["responses"]["success"]
    assert (first["message"], first["unchanged"]) == ("Relationship upserted successfully", True)
    assert "unchanged" not in second
    assert await versions(api, "/apollo/er/relationships/r1/versions") == [1]
    logs = await api.status_logs(COLLECTION, {"relationshipid": "r1", "transactionid": body["transactionId"]})
    assert [(r["state"], r["message"]) for r in logs["data"]] == [("Completed", UNCHANGED)]


async def test_any_change_still_writes_a_version(api):
    await api.register(COLLECTION)
    await api.entities(COLLECTION, [entity("a"), entity("b")])
    await api.relationships(COLLECTION, relationship("r1", "a", "b", unit="kW"))
    body = await api.relationships(COLLECTION, relationship("r1", "a", "b"))  # a property dropped is a change
    assert "unchanged" not in body["data"]["responses"]["success"][0]
    assert await versions(api, "/apollo/er/relationships/r1/versions") == [1, 2]


async def test_resending_an_entity_unchanged_writes_no_version(api):
    await api.register(COLLECTION)
    await api.entities(COLLECTION, entity("a", tags=["x", "y"]))
    body = await api.entities(COLLECTION, entity("a", tags=["x", "y"]))
    assert body["data"]["responses"]["success"][0]["unchanged"] is True
    body = await api.entities(COLLECTION, entity("a", tags=["y", "x"]))  # order is content
    assert "unchanged" not in body["data"]["responses"]["success"][0]
    assert await versions(api, "/apollo/er/entities/a/versions") == [1, 2]


async def test_a_deleted_entity_sent_again_is_written_again(api):
    await api.register(COLLECTION)
    await api.entities(COLLECTION, entity("a"))
    await api.call("DELETE", "/apollo/er/entities/a", 200, collection=COLLECTION, schema="delete")
    body = await api.entities(COLLECTION, entity("a"))
    assert "unchanged" not in body["data"]["responses"]["success"][0]
    assert await versions(api, "/apollo/er/entities/a/versions") == [1, 2, 3]


async def test_an_async_job_resending_unchanged_items_writes_no_version(app_factory):
    api = await app_factory(jobs=FAST_JOBS)
    await api.register(COLLECTION)
    await api.entities(COLLECTION, [entity("a"), entity("b")])
    items = [relationship(f"r{i}", "a", "b") for i in range(5)]
    await wait_for_job(api, (await submit(api, items))["transactionId"])
    again = (await submit(api, items))["transactionId"]
    await wait_for_job(api, again)
    item_records = [r for r in await all_records(api, again) if r["requestObject"] == "Relationship"]
    assert [(r["state"], r["message"]) for r in item_records] == [("Completed", UNCHANGED)] * 5
    assert await versions(api, "/apollo/er/relationships/r3/versions") == [1]
