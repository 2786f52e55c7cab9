"""GET /apollo/er/ercollections/{id}/stats: counts of active entities and relationships, in all and per type."""

from __future__ import annotations

import pytest

from tests.api_fixtures import entity, relationship

HAS_PART = "BRICK_0_4__hasPart_Equipment_Equipment"
IS_FED_BY = "BRICK_0_4__isFedBy_Equipment_Equipment"


async def stats(api, collection: str, expect: int = 200, **kwargs) -> dict:
    return await api.call("GET", f"/apollo/er/ercollections/{collection}/stats", expect,
                          schema="collection-stats" if expect == 200 else None, **kwargs)


async def test_an_empty_collection_counts_zero(api):
    await api.register("c1")
    body = await stats(api, "c1")
    assert body["status"] == {"message": "", "code": "200"}
    assert body["data"] == [{"Summary": {"Entities": 0, "Relationships": 0}, "Entities": {}, "Relationships": {}}]


async def test_counts_per_type_and_in_all(api):
    await api.register("c1")
    await api.register("c2")
    await api.entities("c1", [entity("a"), entity("b"), entity("v", "BRICK_0_4__VAV"),
                              entity("t", "BRICK_0_4__Temperature_Sensor")])
    await api.entities("c2", entity("x"))
    await api.relationships("c1", [relationship("r1", "a", "b"), relationship("r2", "b", "a"),
                                   relationship("r3", "a", "v", relationship_type=HAS_PART)])
    await api.relationships("c2", relationship("r9", "x", "a", destinationERCollectionId="c1"))
    await api.entities("c1", entity("a", entityName="renamed"))  # a second version counts once
    body = await stats(api, "c1")
    assert body["data"] == [{
        "Summary": {"Entities": 4, "Relationships": 3},
        "Entities": {"BRICK_0_4__AHU": 2, "BRICK_0_4__Temperature_Sensor": 1, "BRICK_0_4__VAV": 1},
        "Relationships": {HAS_PART: 1, IS_FED_BY: 2},
    }]
    # a relationship counts in the collection it lives in, not in its destination's
    assert (await stats(api, "c2"))["data"][0]["Summary"] == {"Entities": 1, "Relationships": 1}


async def test_types_are_counted_under_the_names_they_are_stored_with(api):
    await api.register("c1")
    await api.entities("c1", [entity("a"), entity("b", "BRICK_1_4__AHU")])
    body = await stats(api, "c1")
    assert body["data"][0]["Entities"] == {"BRICK_0_4__AHU": 1, "BRICK_1_4__AHU": 1}


async def test_deleted_documents_are_not_counted(api):
    await api.register("c1")
    await api.entities("c1", [entity("a"), entity("b")])
    await api.relationships("c1", [relationship("r1", "a", "b"), relationship("r2", "b", "a")])
    await api.call("DELETE", "/apollo/er/relationships/r1", 200, collection="c1", schema="delete")
    body = await stats(api, "c1")
    assert body["data"][0]["Summary"] == {"Entities": 2, "Relationships": 1}
    assert body["data"][0]["Relationships"] == {IS_FED_BY: 1}


async def test_stats_need_a_read_grant_and_no_header(api):
    await api.register("c1")
    await api.entities("c1", entity("a"))
    body = await stats(api.as_("mallory"), "c1", expect=403)
    assert body["status"]["message"] == "ERCollection c1 is not registered or the caller has no read grant on it"
    await api.grant("c1", "writer", ["write"])
    await stats(api.as_("writer"), "c1", expect=403)
    await api.grant("c1", "reader", ["read"])
    assert (await stats(api.as_("reader"), "c1"))["data"][0]["Summary"]["Entities"] == 1
    body = await stats(api, "ghost", expect=403)
    assert body["status"]["message"] == "ERCollection ghost is not registered or the caller has no read grant on it"
    body = await stats(api.as_("alice", "apollo_write"), "c1", expect=403)
    assert body["status"]["message"] == "The token lacks the scope apollo_read"
    # the header, if sent, changes nothing: the path names the collection
    await api.register("c2")
    body = await stats(api, "c1", headers={"ercollectionid": "c2"})
    assert body["data"][0]["Summary"]["Entities"] == 1


@pytest.mark.parametrize("bad", ["-starts-with-dash", "has space"])
async def test_an_invalid_collection_id_is_400(api, bad):
    body = await stats(api, bad, expect=400)
    assert body["status"]["message"] == f"{bad} is not a valid ERCollection id"


async def test_unknown_query_parameters_are_400_and_include_system_data_is_accepted(api):
    await api.register("c1")
    await stats(api, "c1", params={"includeSystemData": "true"})
    body = await stats(api, "c1", params={"detail": "full"}, expect=400)
    assert body["status"]["message"] == "Unknown query parameter detail: this operation takes includeSystemData"
