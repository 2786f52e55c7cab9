"""DELETE of relationships and entities: soft deletes as new versions, status records, 404s, the 409 of a
referenced entity, and cascade=true across collections with the rights it needs."""

from __future__ import annotations

import pytest

from tests.api_fixtures import entity, relationship
from tests.read_helpers import page


async def delete(api, path: str, expect: int = 200, collection: str | None = "c1", **kwargs) -> dict:
    return await api.call("DELETE", path, expect, collection=collection,
                          schema="delete" if expect == 200 else None, **kwargs)


def deleted(body: dict) -> list[tuple[str, str, str, int]]:
    return [(d["object"], d["erCollectionId"], d["id"], d["version"]) for d in body["data"]["deleted"]]


@pytest.fixture
async def plant(api):
    """c1: AHUs a, b, c; r1 a->b, r2 b->c. c2: AHU x; r9 x->a (into c1)."""
    await api.register("c1")
    await api.register("c2")
    await api.entities("c1", [entity("a"), entity("b"), entity("c")])
    await api.entities("c2", entity("x"))
    await api.relationships("c1", [relationship("r1", "a", "b"), relationship("r2", "b", "c")])
    await api.relationships("c2", relationship("r9", "x", "a", destinationERCollectionId="c1"))
    return api


# ---- relationships ------------------------------------------------------------------------------------------------


async def test_deleting_a_relationship_writes_an_inactive_version_and_a_status_record(plant):
    body = await delete(plant, "/apollo/er/relationships/r1", headers={"X-Correlation-Id": "cleanup-7"})
    assert body["status"] == {"message": "Relationship r1 deleted", "code": "200"}
    assert body["_headers"]["X-Transaction-Id"] == body["transactionId"]
    [item] = body["data"]["deleted"]
    assert deleted(body) == [("Relationship", "c1", "r1", 2)]
    assert item["message"] == "Relationship deleted"
    assert item["tracker"].endswith(
        f"/apollo/status/logs?relationshipid=r1&transactionid={body['transactionId']}")

    logs = await plant.status_logs("c1", {"transactionid": body["transactionId"]})
    [record] = logs["data"]
    assert (record["requestAction"], record["requestObject"], record["state"]) == ("Delete", "Relationship", "Completed")
    assert record["correlationId"] == "cleanup-7"
    assert record["serviceData"] == {"erCollectionId": "c1", "entityId": None, "relationshipId": "r1"}

    versions = await page(plant, "/apollo/er/relationships/r1/versions", "c1")
    assert [(v["sysData"]["sysRelationshipVersion"], v["isActive"]) for v in versions["data"]] == [(1, True), (2, False)]
    gone = versions["data"][1]
    assert gone["sysData"]["sysTransactionId"] == body["transactionId"]
    assert gone["sysData"]["sysCreatedAt"] == versions["data"][0]["sysData"]["sysCreatedAt"]
    assert {k: v for k, v in gone.items() if k not in ("sysData", "isActive")} == \
        {k: v for k, v in versions["data"][0].items() if k not in ("sysData", "isActive")}


async def test_a_deleted_relationship_is_404_and_left_out_of_lists_unless_include_inactive(plant):
    await delete(plant, "/apollo/er/relationships/r1")
    body = await plant.relationship("c1", "r1", expect=404)
    assert body["status"]["message"] == "Relationship r1 not found in ERCollection c1"
    shown = await plant.relationship("c1", "r1", params={"includeInactive": "true"}, schema="relationship-read")
    assert shown["data"][0]["isActive"] is False

    listed = await page(plant, "/apollo/er/relationships", "c1")
    assert [r["id"] for r in listed["data"]] == ["r2"] and listed["paging"]["totalCount"] == 1
    listed = await page(plant, "/apollo/er/relationships", "c1", params={"includeInactive": "true"})
    assert [(r["id"], r["isActive"]) for r in listed["data"]] == [("r1", False), ("r2", True)]
    assert listed["paging"]["totalCount"] == 2

    assert [r["id"] for r in (await page(plant, "/apollo/er/entities/a/relationships", "c1"))["data"]] == ["r9"]
    typed = "/apollo/er/relationshiptypes/BRICK_0_4__isFedBy_Equipment_Equipment/relationships"
    assert [r["id"] for r in (await page(plant, typed, "c1"))["data"]] == ["r2"]
    await plant.call("GET", f"{typed}/r1", 404, collection="c1")
    await plant.call("GET", f"{typed}/r1", 200, collection="c1", params={"includeInactive": "true"},
                     schema="relationship-read")


async def test_deleting_an_absent_or_already_deleted_relationship_is_404(plant):
    body = await delete(plant, "/apollo/er/relationships/nope", expect=404)
    assert body["status"]["message"] == "Relationship nope not found in ERCollection c1"
    await delete(plant, "/apollo/er/relationships/r1")
    body = await delete(plant, "/apollo/er/relationships/r1", expect=404)
    assert body["status"]["message"] == "Relationship r1 not found in ERCollection c1"
    versions = await page(plant, "/apollo/er/relationships/r1/versions", "c1")
    assert versions["paging"]["totalCount"] == 2  # the second delete wrote nothing
    # a relationship of another collection is not found in this one
    await delete(plant, "/apollo/er/relationships/r9", expect=404)


async def test_upserting_a_deleted_relationship_brings_it_back_as_a_new_version(plant):
    await delete(plant, "/apollo/er/relationships/r1")
    await plant.relationships("c1", relationship("r1", "a", "b"))
    [current] = (await plant.relationship("c1", "r1", params={"includeSystemData": "true"}))["data"]
    assert current["isActive"] is True and current["sysData"]["sysRelationshipVersion"] == 3


async def test_deleting_needs_the_write_grant_and_scope(plant):
    await plant.grant("c1", "reader", ["read"])
    body = await delete(plant.as_("reader"), "/apollo/er/relationships/r1", expect=403)
    assert body["status"]["message"] == "ERCollection c1 is not registered or the caller has no write grant on it"
    body = await delete(plant.as_("alice", "apollo_read"), "/apollo/er/relationships/r1", expect=403)
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    body = await delete(plant, "/apollo/er/relationships/r1", collection=None, expect=400)
    assert body["status"]["message"] == "The ercollectionid header is required"
    await delete(plant.as_("mallory"), "/apollo/er/relationships/r1", expect=403)
    await plant.relationship("c1", "r1")  # still there


async def test_a_delete_takes_no_unknown_query_parameter(plant):
    body = await delete(plant, "/apollo/er/relationships/r1", params={"cascade": "true"}, expect=400)
    assert body["status"]["message"].startswith("Unknown query parameter cascade")
    await plant.relationship("c1", "r1")


# ---- entities --------------------------------------------------------------------------------------------------------


async def test_deleting_an_unreferenced_entity(plant):
    await plant.entities("c1", entity("lonely"))
    body = await delete(plant, "/apollo/er/entities/lonely")
    assert body["status"]["message"] == "Entity lonely deleted"
    assert deleted(body) == [("Entity", "c1", "lonely", 2)]
    assert body["data"]["deleted"][0]["tracker"].endswith(f"entityid=lonely&transactionid={body['transactionId']}")
    await plant.call("GET", "/apollo/er/entities/lonely", 404, collection="c1")
    shown = await plant.call("GET", "/apollo/er/entities/lonely", 200, collection="c1", schema="entity-read",
                             params={"includeInactive": "true"})
    assert shown["data"][0]["isActive"] is False
    versions = await page(plant, "/apollo/er/entities/lonely/versions", "c1")
    assert [v["isActive"] for v in versions["data"]] == [True, False]
    assert [e["id"] for e in (await page(plant, "/apollo/er/entities", "c1"))["data"]] == ["a", "b", "c"]
    logs = await plant.status_logs("c1", {"entityid": "lonely", "transactionid": body["transactionId"]})
    assert [(r["requestAction"], r["requestObject"]) for r in logs["data"]] == [("Delete", "Entity")]
    await delete(plant, "/apollo/er/entities/lonely", expect=404)


async def test_a_deleted_entity_can_no_longer_be_an_end_of_a_relationship(plant):
    await plant.entities("c1", entity("lonely"))
    await delete(plant, "/apollo/er/entities/lonely")
    body = await plant.relationships("c1", relationship("r-new", "a", "lonely"))
    assert body["data"]["responses"]["failure"][0]["message"] == "Destination entity lonely not found in ERCollection c1"


async def test_a_referenced_entity_is_409_and_nothing_is_written(plant):
    body = await delete(plant, "/apollo/er/entities/b", expect=409)
    assert body["status"]["message"] == (
        "Entity b is referenced by 2 active relationships, among them r1 (ERCollection c1), r2 (ERCollection c1); "
        "delete those first, or delete with cascade=true")
    await plant.call("GET", "/apollo/er/entities/b", 200, collection="c1", schema="entity-read")
    assert (await page(plant, "/apollo/er/entities/b/versions", "c1"))["paging"]["totalCount"] == 1


async def test_a_reference_from_another_collection_also_blocks(plant):
    await delete(plant, "/apollo/er/relationships/r1")
    body = await delete(plant, "/apollo/er/entities/a", expect=409)
    assert body["status"]["message"] == (
        "Entity a is referenced by 1 active relationship, among them r9 (ERCollection c2); "
        "delete those first, or delete with cascade=true")
    await delete(plant, "/apollo/er/relationships/r9", collection="c2")
    await delete(plant, "/apollo/er/entities/a")


async def bobs_edge_into_c(plant, relationship_id: str):
    """bob (a reader of c1) registers bob-c and stores ``relationship_id``: y in bob-c -> alice's c in c1."""
    await plant.grant("c1", "bob", ["read"])
    bob = plant.as_("bob")
    await bob.register("bob-c")
    await bob.entities("bob-c", entity("y"))
    await bob.relationships("bob-c", relationship(relationship_id, "y", "c", destinationERCollectionId="c1"))
    return bob


async def test_references_from_collections_the_caller_cannot_read_are_counted_not_named(plant):
    await bobs_edge_into_c(plant, "secret")
    body = await delete(plant, "/apollo/er/entities/c", expect=409)
    assert body["status"]["message"] == (
        "Entity c is referenced by 2 active relationships, among them r2 (ERCollection c1); "
        "delete those first, or delete with cascade=true")


async def test_cascade_deactivates_every_referencing_relationship_in_every_collection(plant):
    body = await delete(plant, "/apollo/er/entities/a", params={"cascade": "true"})
    assert body["status"]["message"] == "Entity a deleted with 2 relationships that referenced it"
    assert deleted(body) == [("Entity", "c1", "a", 2), ("Relationship", "c1", "r1", 2), ("Relationship", "c2", "r9", 2)]
    messages = {d["id"]: d["message"] for d in body["data"]["deleted"]}
    assert messages == {"a": "Entity deleted", "r1": "Relationship deleted with entity a (cascade)",
                        "r9": "Relationship deleted with entity a (cascade)"}
    await plant.relationship("c1", "r1", expect=404)
    await plant.relationship("c2", "r9", expect=404)
    await plant.relationship("c1", "r2")  # b -> c: untouched
    for collection, relationship_id in (("c1", "r1"), ("c2", "r9")):
        versions = await page(plant, f"/apollo/er/relationships/{relationship_id}/versions", collection)
        assert [v["isActive"] for v in versions["data"]] == [True, False]
        assert versions["data"][1]["sysData"]["sysTransactionId"] == body["transactionId"]
    # one status record per deactivated document, all under the request's collection: every tracker resolves
    logs = await plant.status_logs("c1", {"transactionid": body["transactionId"]})
    assert [(r["requestObject"], r["requestAction"], r["state"]) for r in logs["data"]] == [
        ("Entity", "Delete", "Completed"), ("Relationship", "Delete", "Completed"),
        ("Relationship", "Delete", "Completed")]
    for item in body["data"]["deleted"]:
        path = "/" + item["tracker"].split("://", 1)[1].split("/", 1)[1]
        await plant.call("GET", path, 200, collection="c1", schema="status-logs")
    edges = await page(plant, "/apollo/er/entities/a/relationships", "c1", params={"includeInactive": "true"})
    assert [(r["id"], r["isActive"]) for r in edges["data"]] == [("r1", False), ("r9", False)]


async def test_cascade_without_references_is_a_plain_delete(plant):
    await plant.entities("c1", entity("lonely"))
    body = await delete(plant, "/apollo/er/entities/lonely", params={"cascade": "TRUE"})
    assert body["status"]["message"] == "Entity lonely deleted"
    assert deleted(body) == [("Entity", "c1", "lonely", 2)]


async def test_cascade_false_is_the_default(plant):
    await delete(plant, "/apollo/er/entities/a", params={"cascade": "false"}, expect=409)
    body = await delete(plant, "/apollo/er/entities/a", params={"cascade": "maybe"}, expect=400)
    assert body["status"]["message"] == "The query parameter cascade must be true or false"


async def test_cascade_needs_a_write_grant_wherever_a_referencing_relationship_lives(plant):
    """bob's edge into c1: an editor of c1 (not its owner) may read bob's collection but not write it, so
    nothing happens."""
    bob = await bobs_edge_into_c(plant, "bobs")
    await plant.grant("c1", "editor", ["read", "write"])
    editor = plant.as_("editor")
    body = await delete(editor, "/apollo/er/entities/c", params={"cascade": "true"}, expect=403)
    assert body["status"]["message"] == (
        "cascade=true would deactivate relationships in 1 ERCollection where the caller has no write grant; "
        "nothing was deleted")
    await bob.grant("bob-c", "editor", ["read"])
    body = await delete(editor, "/apollo/er/entities/c", params={"cascade": "true"}, expect=403)
    assert body["status"]["message"] == (
        "cascade=true would deactivate relationships in 1 ERCollection where the caller has no write grant "
        "(bob-c); nothing was deleted")
    await plant.call("GET", "/apollo/er/entities/c", 200, collection="c1", schema="entity-read")
    await plant.relationship("c1", "r2")
    await bob.relationship("bob-c", "bobs")

    await bob.grant("bob-c", "editor", ["read", "write"])
    body = await delete(editor, "/apollo/er/entities/c", params={"cascade": "true"})
    assert deleted(body) == [("Entity", "c1", "c", 2), ("Relationship", "bob-c", "bobs", 2),
                             ("Relationship", "c1", "r2", 2)]
    await bob.relationship("bob-c", "bobs", expect=404)


async def test_the_owner_can_always_delete_an_entity_even_one_a_revoked_reader_points_at(plant):
    """bob read c1, pointed at alice's c from his own collection, then lost the grant: without cascade the
    edge still refuses the delete (409, as any reference does); with cascade=true the owner's delete goes
    through and deactivates bob's edge, in bob's collection, where alice holds no grant at all."""
    bob = await bobs_edge_into_c(plant, "bobs")
    await plant.grant("c1", "bob", [])
    await delete(plant, "/apollo/er/entities/c", expect=409)
    body = await delete(plant, "/apollo/er/entities/c", params={"cascade": "true"})
    assert body["status"]["message"] == "Entity c deleted with 2 relationships that referenced it"
    assert deleted(body) == [("Entity", "c1", "c", 2), ("Relationship", "bob-c", "bobs", 2),
                             ("Relationship", "c1", "r2", 2)]
    await plant.call("GET", "/apollo/er/entities/c", 404, collection="c1")
    await bob.relationship("bob-c", "bobs", expect=404)
    [gone] = (await bob.relationship("bob-c", "bobs", params={"includeInactive": "true"},
                                     schema="relationship-read"))["data"]
    assert gone["isActive"] is False
    await plant.call("GET", "/apollo/er/relationships/bobs", 403, collection="bob-c")  # still no grant there


async def test_deleting_an_entity_needs_the_write_grant(plant):
    await plant.grant("c1", "reader", ["read"])
    body = await delete(plant.as_("reader"), "/apollo/er/entities/a", params={"cascade": "true"}, expect=403)
    assert body["status"]["message"] == "ERCollection c1 is not registered or the caller has no write grant on it"
    body = await delete(plant, "/apollo/er/entities/nope", expect=404)
    assert body["status"]["message"] == "Entity nope not found in ERCollection c1"


async def test_stats_and_counts_drop_what_was_deleted(plant):
    await delete(plant, "/apollo/er/entities/a", params={"cascade": "true"})
    stats = await plant.call("GET", "/apollo/er/ercollections/c1/stats", 200, schema="collection-stats")
    assert stats["data"][0]["Summary"] == {"Entities": 2, "Relationships": 1}
    edges = await page(plant, "/apollo/er/entities/a/relationships", "c1")
    assert edges["paging"] == {"totalCount": 0, "continuationToken": None}
