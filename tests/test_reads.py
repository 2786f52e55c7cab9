"""Lists of relationships and entities (all, filtered, per type), versions, and the edges of one entity across
collections, with the rule that an incoming edge shows only from a collection the caller may read."""

from __future__ import annotations

import pytest

from tests.api_fixtures import RELATIONSHIP_TYPE, entity, relationship
from tests.read_helpers import page, walk

RELATIONSHIPS = "/apollo/er/relationships"
ENTITIES = "/apollo/er/entities"
HAS_PART = "BRICK_0_4__hasPart_Equipment_Equipment"


def ids(body: dict) -> list[str]:
    return [item["id"] for item in body["data"]]


@pytest.fixture
async def plant(api):
    """c1: AHUs a, b, c and a VAV v; a isFedBy b, a isFedBy c, b hasPart v. c2: AHU x; x isFedBy a in c1."""
    await api.register("c1")
    await api.register("c2")
    await api.entities("c1", [entity("a"), entity("b"), entity("c"), entity("v", "BRICK_0_4__VAV")])
    await api.entities("c2", entity("x"))
    await api.relationships("c1", [
        relationship("r1", "a", "b"),
        relationship("r2", "a", "c"),
        relationship("r3", "b", "v", relationship_type=HAS_PART),
    ])
    await api.relationships("c2", relationship("r9", "x", "a", destinationERCollectionId="c1"))
    return api


# ---- relationships ------------------------------------------------------------------------------------------------


async def test_relationships_of_a_collection_in_id_order_without_system_data(plant):
    body = await page(plant, RELATIONSHIPS, "c1")
    assert body["status"] == {"message": "", "code": "200"}
    assert ids(body) == ["r1", "r2", "r3"]
    assert body["paging"] == {"totalCount": 3, "continuationToken": None}
    assert all("sysData" not in item for item in body["data"])
    first = body["data"][0]
    assert first["sourceERCollectionId"] == first["destinationERCollectionId"] == "c1"
    assert first["brickRelationshipName"] == "isFedBy" and first["isActive"] is True


async def test_include_system_data_adds_sys_data_on_lists(plant):
    body = await page(plant, RELATIONSHIPS, "c1", params={"includeSystemData": "TRUE"})
    assert [item["sysData"]["sysRelationshipVersion"] for item in body["data"]] == [1, 1, 1]
    assert body["data"][0]["sysData"]["sysCreatedBy"] == "alice"


@pytest.mark.parametrize("params, expected", [
    ({"sourceEntityId": "a"}, ["r1", "r2"]),
    ({"destinationEntityId": "v"}, ["r3"]),
    ({"destinationERCollectionId": "c1"}, ["r1", "r2", "r3"]),
    ({"destinationERCollectionId": "c2"}, []),
    ({"sourceEntityId": "a", "destinationEntityId": "c"}, ["r2"]),
    ({"sourceEntityId": "nobody"}, []),
])
async def test_relationship_filters(plant, params, expected):
    body = await page(plant, RELATIONSHIPS, "c1", params=params)
    assert ids(body) == expected
    assert body["paging"]["totalCount"] == len(expected)


async def test_a_cross_collection_relationship_is_listed_where_it_lives(plant):
    body = await page(plant, RELATIONSHIPS, "c2", params={"destinationERCollectionId": "c1"})
    assert ids(body) == ["r9"]
    assert body["data"][0]["destinationERCollectionId"] == "c1"


@pytest.mark.parametrize("params, message", [
    ({"sourceEntityId": ""}, "The query parameter sourceEntityId is not a valid id"),
    ({"destinationEntityId": "a\x01"}, "The query parameter destinationEntityId is not a valid id"),
    ({"destinationERCollectionId": "-bad"}, "The query parameter destinationERCollectionId is not a valid ERCollection id"),
    ({"includeInactive": "yes"}, "The query parameter includeInactive must be true or false"),
    ({"includeSystemData": "1"}, "The query parameter includeSystemData must be true or false"),
])
async def test_bad_filter_values_are_400(plant, params, message):
    body = await page(plant, RELATIONSHIPS, "c1", params=params, expect=400)
    assert body["status"]["message"] == message


async def test_relationships_of_one_type_match_every_spelling_of_it(plant):
    await plant.relationships("c1", relationship("r4", "c", "b", relationship_type="BRICK_1_4__isFedBy_Equipment_Equipment"))
    for name in (RELATIONSHIP_TYPE, "BRICK_1_4__isFedBy_Equipment_Equipment"):
        body = await page(plant, f"/apollo/er/relationshiptypes/{name}/relationships", "c1")
        assert ids(body) == ["r1", "r2", "r4"]
        assert body["paging"]["totalCount"] == 3
    body = await page(plant, f"/apollo/er/relationshiptypes/{HAS_PART}/relationships", "c1")
    assert ids(body) == ["r3"]
    body = await page(plant, f"/apollo/er/relationshiptypes/{RELATIONSHIP_TYPE}/relationships", "c1",
                      params={"sourceEntityId": "c"})
    assert ids(body) == ["r4"]


async def test_relationships_of_a_type_nobody_used_is_an_empty_page(plant):
    body = await page(plant, "/apollo/er/relationshiptypes/BRICK_0_4__feeds_Equipment_Equipment/relationships", "c1")
    assert body["data"] == [] and body["paging"] == {"totalCount": 0, "continuationToken": None}


async def test_relationships_of_an_unknown_type_is_404(plant):
    body = await page(plant, "/apollo/er/relationshiptypes/BRICK_0_4__likes_Equipment_Equipment/relationships",
                      "c1", expect=404)
    assert body["status"]["message"] == (
        "Relationship type BRICK_0_4__likes_Equipment_Equipment not found in the relationship type catalog")


async def test_one_relationship_of_one_type(plant):
    path = f"/apollo/er/relationshiptypes/{RELATIONSHIP_TYPE}/relationships/r1"
    body = await plant.call("GET", path, 200, collection="c1", schema="relationship-read",
                            params={"includeSystemData": "true"})
    assert ids(body) == ["r1"] and body["data"][0]["sysData"]["sysRelationshipVersion"] == 1
    body = await plant.call("GET", f"/apollo/er/relationshiptypes/{HAS_PART}/relationships/r1", 404, collection="c1")
    assert body["status"]["message"] == f"Relationship r1 of type {HAS_PART} not found in ERCollection c1"
    body = await plant.call("GET", "/apollo/er/relationshiptypes/BRICK_0_4__nope/relationships/r1", 404,
                            collection="c1")
    assert body["status"]["message"] == "Relationship type BRICK_0_4__nope not found in the relationship type catalog"
    await plant.as_("mallory").call("GET", path, 403, collection="c1")


# ---- entities -------------------------------------------------------------------------------------------------------


async def test_entities_of_a_collection(plant):
    body = await page(plant, ENTITIES, "c1")
    assert ids(body) == ["a", "b", "c", "v"]
    assert body["data"][0]["brickEntityType"] == "BRICK_0_4__Equipment"
    assert all("sysData" not in item for item in body["data"])
    body = await page(plant, ENTITIES, "c1", params={"includeSystemData": "true"})
    assert all(item["sysData"]["sysEntityVersion"] == 1 for item in body["data"])


async def test_entities_of_one_type_and_with_subtypes(plant):
    await plant.entities("c1", [entity("t", "BRICK_0_4__Temperature_Sensor"), entity("h", "BRICK_1_4__AHU")])
    ahus = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__AHU/entities", "c1")
    assert ids(ahus) == ["a", "b", "c", "h"]  # both spellings of AHU
    assert ahus["paging"]["totalCount"] == 4
    exact = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__Equipment/entities", "c1")
    assert ids(exact) == []
    equipment = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__Equipment/entities", "c1",
                           params={"includeSubtypes": "true"})
    assert ids(equipment) == ["a", "b", "c", "h", "v"]  # AHUs and the VAV, not the sensor
    points = await page(plant, "/apollo/er/entitytypes/BRICK_1_4__Point/entities", "c1",
                        params={"includeSubtypes": "True"})
    assert ids(points) == ["t"]
    walked = await walk(plant, "/apollo/er/entitytypes/BRICK_0_4__Equipment/entities", "c1", 2,
                        params={"includeSubtypes": "true"})
    assert [item["id"] for item in walked] == ["a", "b", "c", "h", "v"]


async def test_entities_of_an_unknown_type_is_404_and_bad_include_subtypes_400(plant):
    body = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__Unicorn/entities", "c1", expect=404)
    assert body["status"]["message"] == "Entity type BRICK_0_4__Unicorn not found in the entity type catalog"
    body = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__AHU/entities", "c1",
                      params={"includeSubtypes": "maybe"}, expect=400)
    assert body["status"]["message"] == "The query parameter includeSubtypes must be true or false"


async def test_a_token_for_one_type_does_not_serve_its_subtypes(plant):
    first = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__Equipment/entities", "c1", size=1,
                       params={"includeSubtypes": "true"})
    body = await page(plant, "/apollo/er/entitytypes/BRICK_0_4__Equipment/entities", "c1", size=1,
                      token=first["paging"]["continuationToken"], expect=400)
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


# ---- versions -------------------------------------------------------------------------------------------------------


async def test_relationship_versions_oldest_first_with_system_data(plant):
    await plant.relationships("c1", relationship("r1", "a", "b", relationshipName="second"))
    await plant.relationships("c1", relationship("r1", "a", "b", relationshipName="third"))
    body = await page(plant, "/apollo/er/relationships/r1/versions", "c1")
    assert [v["sysData"]["sysRelationshipVersion"] for v in body["data"]] == [1, 2, 3]
    assert [v["relationshipName"] for v in body["data"]] == ["test", "second", "third"]
    assert body["paging"] == {"totalCount": 3, "continuationToken": None}
    plain = await page(plant, "/apollo/er/relationships/r1/versions", "c1", params={"includeSystemData": "false"})
    assert all("sysData" not in v for v in plain["data"])
    walked = await walk(plant, "/apollo/er/relationships/r1/versions", "c1", 2)
    assert walked == body["data"]


async def test_entity_versions(plant):
    await plant.entities("c1", entity("a", entityName="renamed"))
    body = await page(plant, "/apollo/er/entities/a/versions", "c1")
    assert [(v["sysData"]["sysEntityVersion"], v["entityName"]) for v in body["data"]] == [(1, "a"), (2, "renamed")]


async def test_versions_of_an_unknown_id_are_404_and_collections_are_separate(plant):
    body = await page(plant, "/apollo/er/relationships/nope/versions", "c1", expect=404)
    assert body["status"]["message"] == "Relationship nope not found in ERCollection c1"
    body = await page(plant, "/apollo/er/entities/x/versions", "c1", expect=404)
    assert body["status"]["message"] == "Entity x not found in ERCollection c1"
    await page(plant, "/apollo/er/entities/x/versions", "c2")


async def test_a_versions_token_is_bound_to_its_id(plant):
    for name in ("second", "third"):
        await plant.relationships("c1", [relationship("r1", "a", "b", relationshipName=name),
                                         relationship("r2", "a", "c", relationshipName=name)])
    first = await page(plant, "/apollo/er/relationships/r1/versions", "c1", size=1)
    body = await page(plant, "/apollo/er/relationships/r2/versions", "c1", size=1,
                      token=first["paging"]["continuationToken"], expect=400)
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


# ---- edges of one entity, across collections -------------------------------------------------------------------------


def edges(entity_id: str) -> str:
    return f"/apollo/er/entities/{entity_id}/relationships"


async def test_outgoing_incoming_and_both(plant):
    assert ids(await page(plant, edges("a"), "c1", params={"direction": "outgoing"})) == ["r1", "r2"]
    incoming = await page(plant, edges("a"), "c1", params={"direction": "incoming"})
    assert ids(incoming) == ["r9"]  # stored in c2, which alice owns
    assert incoming["data"][0]["sourceERCollectionId"] == "c2"
    both = await page(plant, edges("a"), "c1")
    # ordered by (the collection a relationship lives in, id)
    assert [(r["sourceERCollectionId"], r["id"]) for r in both["data"]] == [("c1", "r1"), ("c1", "r2"), ("c2", "r9")]
    assert both["paging"]["totalCount"] == 3
    assert ids(await page(plant, edges("b"), "c1")) == ["r1", "r3"]
    assert ids(await page(plant, edges("v"), "c1", params={"direction": "outgoing"})) == []


async def test_a_loop_is_listed_once(plant):
    await plant.relationships("c1", relationship("r-loop", "c", "c"))
    body = await page(plant, edges("c"), "c1")
    assert ids(body) == ["r-loop", "r2"]
    assert body["paging"]["totalCount"] == 2


async def test_an_incoming_edge_shows_only_from_a_collection_the_caller_may_read(api):
    """bob writes an edge from his collection into alice's AHU; alice sees it only once bob lets her read."""
    await api.register("alice-c")
    await api.entities("alice-c", entity("ahu"))
    await api.grant("alice-c", "bob", ["read"])  # bob needs read on the destination to write the edge
    bob = api.as_("bob")
    await bob.register("bob-c")
    await bob.entities("bob-c", entity("bob-ahu"))
    await bob.relationships("bob-c", relationship("bob-edge", "bob-ahu", "ahu", destinationERCollectionId="alice-c"))
    await api.relationships("alice-c", relationship("own-loop", "ahu", "ahu"))

    body = await page(api, edges("ahu"), "alice-c", params={"direction": "incoming"})
    assert ids(body) == ["own-loop"]
    assert body["paging"]["totalCount"] == 1  # bob's edge is neither shown nor counted
    assert ids(await page(api, edges("ahu"), "alice-c")) == ["own-loop"]

    # bob, who may read both collections, sees his edge from alice's side
    body = await page(bob, edges("ahu"), "alice-c", params={"direction": "incoming"})
    assert ids(body) == ["own-loop", "bob-edge"]  # (collection, id) order: alice-c before bob-c

    await bob.grant("bob-c", "alice", ["read"])
    body = await page(api, edges("ahu"), "alice-c", params={"direction": "incoming"})
    assert ids(body) == ["own-loop", "bob-edge"]
    assert body["data"][1]["sourceERCollectionId"] == "bob-c"
    assert body["paging"]["totalCount"] == 2

    await bob.grant("bob-c", "alice", [])  # revoked: gone again
    assert ids(await page(api, edges("ahu"), "alice-c", params={"direction": "incoming"})) == ["own-loop"]


async def test_edges_walk_across_collections(api):
    await api.register("hub")
    await api.entities("hub", entity("h"))
    for n in range(3):
        await api.register(f"s{n}")
        await api.entities(f"s{n}", [entity("e")])
        await api.relationships(f"s{n}", [relationship(f"x{k}", "e", "h", destinationERCollectionId="hub")
                                          for k in range(3)])
    everything = (await page(api, edges("h"), "hub", params={"direction": "incoming"}))["data"]
    assert [(r["sourceERCollectionId"], r["id"]) for r in everything] == [
        (f"s{n}", f"x{k}") for n in range(3) for k in range(3)]
    assert await walk(api, edges("h"), "hub", 2, params={"direction": "incoming"}) == everything
    # a token of one direction is not one of another
    first = await page(api, edges("h"), "hub", size=2, params={"direction": "incoming"})
    body = await page(api, edges("h"), "hub", size=2, token=first["paging"]["continuationToken"], expect=400)
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


async def test_direction_must_be_one_of_three(plant):
    body = await page(plant, edges("a"), "c1", params={"direction": "sideways"}, expect=400)
    assert body["status"]["message"] == "The query parameter direction must be outgoing, incoming or both"


async def test_edges_of_an_unknown_entity_are_an_empty_page(plant):
    body = await page(plant, edges("nobody"), "c1")
    assert body["data"] == [] and body["paging"] == {"totalCount": 0, "continuationToken": None}


async def test_ids_with_braces_are_read_by_id_like_any_other(api):
    # ids may hold any character but control characters (common.json): aiohttp's router left out { and }
    await api.register("c1")
    await api.entities("c1", [entity("{a}"), entity("b{")])
    await api.relationships("c1", relationship("{r}", "{a}", "b{"))
    [read] = (await api.call("GET", "/apollo/er/entities/%7Ba%7D", 200, collection="c1"))["data"]
    assert read["id"] == "{a}"
    edges = await api.call("GET", "/apollo/er/entities/b%7B/relationships", 200, collection="c1")
    assert [edge["id"] for edge in edges["data"]] == ["{r}"]
    assert (await api.relationship("c1", "%7Br%7D"))["data"][0]["sourceEntityId"] == "{a}"
    versions = await api.call("GET", "/apollo/er/relationships/%7Br%7D/versions", 200, collection="c1")
    assert len(versions["data"]) == 1
