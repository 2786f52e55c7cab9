"""GET /apollo/er/entities/{id}/graph: several hops across collections, cycles once, transitive Brick
relationships, the visibility rule at every hop, the node limit, and d + 1 storage calls for depth d."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.api_fixtures import entity
from tests.test_batch_first import calls_of, counted  # noqa: F401 (counted is a fixture)

B = "BRICK_1_4__"


def brick(relationship_id: str, source: str, name: str, destination: str, collection: str | None = None) -> dict:
    item = {"id": relationship_id, "sourceEntityId": source, "destinationEntityId": destination,
            "brickRelationshipType": B + name}
    if collection is not None:
        item["destinationERCollectionId"] = collection
    return item


async def write(api, collection: str, items: list[dict]) -> None:
    body = await api.relationships(collection, items)
    assert body["data"]["responses"].get("failure", []) == []


@pytest.fixture
async def plant(api):
    """alice's plant (AHU-1 feeds VAV-1 feeds VAV-2 feeds AHU-1: a cycle; AHU-2), points and floors; carol's
    secret, whose S-1 feeds AHU-1 and is fed by AHU-2. Carol reads the plant; alice cannot read the secret."""
    for name in ("plant", "points", "floors"):
        await api.register(name)
    await api.entities("plant", [entity("ahu1", B + "AHU"), entity("ahu2", B + "AHU"),
                                 entity("vav1", B + "VAV"), entity("vav2", B + "VAV")])
    await api.entities("points", [entity("pt1", B + "Zone_Air_Temperature_Sensor")])
    await api.entities("floors", [entity("z1", B + "HVAC_Zone")])
    await write(api, "plant", [brick("f1", "ahu1", "feeds", "vav1"), brick("f2", "vav1", "feeds", "vav2"),
                               brick("f3", "vav2", "feeds", "ahu1"), brick("p1", "vav1", "hasPoint", "pt1", "points")])
    await write(api, "floors", [brick("z1f", "z1", "isFedBy", "vav2", "plant")])  # the inverse, stored elsewhere
    carol = api.as_("carol")
    await carol.register("secret")
    await carol.entities("secret", [entity("s1", B + "AHU")])
    await api.grant("plant", "carol", ["read"])
    await carol.grant("secret", "alice", ["read"])
    await carol.relationships("secret", [brick("s1f", "s1", "feeds", "ahu1", "plant")])
    await write(api, "plant", [brick("f4", "ahu2", "feeds", "s1", "secret")])
    await carol.grant("secret", "alice", [])
    return api


async def graph(api, entity_id: str = "ahu1", collection: str = "plant", expect: int = 200, **params) -> dict:
    return await api.call("GET", f"/apollo/er/entities/{entity_id}/graph", expect, collection=collection,
                          params=params, schema="graph" if expect == 200 else None)


def shape(body: dict) -> tuple[dict, list]:
    data = body["data"]
    return ({(node["erCollectionId"], node["id"]): node["depth"] for node in data["nodes"]},
            sorted(edge["id"] for edge in data["edges"]))


async def test_hops_follow_a_relationship_and_its_inverse_and_visit_a_cycle_once(plant):
    nodes, edges = shape(await graph(plant, depth="3", direction="outgoing", relationshipType="feeds"))
    assert nodes == {("plant", "ahu1"): 0, ("plant", "vav1"): 1, ("plant", "vav2"): 2, ("floors", "z1"): 3}
    assert edges == ["f1", "f2", "f3", "z1f"]
    nodes, edges = shape(await graph(plant, depth="1", direction="outgoing", relationshipType="feeds"))
    assert nodes == {("plant", "ahu1"): 0, ("plant", "vav1"): 1} and edges == ["f1"]
    nodes, _ = shape(await graph(plant, "z1", "floors", depth="2", direction="incoming",
                                 relationshipType="BRICK_0_4__feeds"))  # upstream, named in the 0.4 scheme
    assert nodes == {("floors", "z1"): 0, ("plant", "vav2"): 1, ("plant", "vav1"): 2}


async def test_without_filters_every_relationship_of_every_readable_collection_is_followed(plant):
    body = await graph(plant, depth="2")
    nodes, edges = shape(body)
    assert nodes == {("plant", "ahu1"): 0, ("plant", "vav1"): 1, ("plant", "vav2"): 1, ("points", "pt1"): 2,
                     ("floors", "z1"): 2}
    assert edges == ["f1", "f2", "f3", "p1", "z1f"] and body["data"]["truncated"] is False
    first = body["data"]["nodes"][0]
    assert first["entity"]["entityType"] == B + "AHU" and "sysData" not in first["entity"]
    with_system = await graph(plant, depth="1", includeSystemData="true")
    assert "sysData" in with_system["data"]["nodes"][0]["entity"]


async def test_transitive_relationships_are_followed_as_far_as_they_go(plant):
    nodes, edges = shape(await graph(plant, transitive="true", direction="outgoing", relationshipType="feeds"))
    assert nodes == {("plant", "ahu1"): 0, ("plant", "vav1"): 1, ("plant", "vav2"): 2, ("floors", "z1"): 3}
    assert edges == ["f1", "f2", "f3", "z1f"]


async def test_entity_type_filters_keep_subclasses_and_walk_through_the_others(plant):
    nodes, edges = shape(await graph(plant, depth="3", entityType="HVAC_Equipment"))  # AHU, VAV are subclasses
    assert nodes == {("plant", "ahu1"): 0, ("plant", "vav1"): 1, ("plant", "vav2"): 1}
    assert edges == ["f1", "f2", "f3"]
    nodes, _ = shape(await graph(plant, depth="2", entityType=["Point", "BRICK_0_4__HVAC_Zone"]))
    assert set(nodes) == {("plant", "ahu1"), ("points", "pt1"), ("floors", "z1")}  # reached through the VAVs


async def test_a_collection_the_caller_cannot_read_contributes_nothing_at_any_depth(plant):
    alice_nodes, alice_edges = shape(await graph(plant, "ahu2", depth="5"))
    assert ("secret", "s1") not in alice_nodes and "f4" not in alice_edges and "s1f" not in alice_edges
    assert alice_nodes == {("plant", "ahu2"): 0}  # its only edge leads into the secret collection
    alice_nodes, alice_edges = shape(await graph(plant, depth="5"))
    assert {key[0] for key in alice_nodes} == {"plant", "points", "floors"} and "s1f" not in alice_edges
    carol = plant.as_("carol")
    carol_nodes, carol_edges = shape(await graph(carol, depth="5"))
    assert carol_nodes == {("plant", "ahu1"): 0, ("plant", "vav1"): 1, ("plant", "vav2"): 1, ("secret", "s1"): 1,
                           ("plant", "ahu2"): 2}  # neither points nor floors: carol cannot read them
    assert carol_edges == ["f1", "f2", "f3", "f4", "s1f"]


async def test_the_node_limit_cuts_the_walk_and_says_so(plant):
    body = await graph(plant, depth="5", limit="2")
    nodes, edges = shape(body)
    assert len(nodes) == 2 and body["data"]["truncated"] is True
    assert all(edge_ends <= set(nodes) for edge_ends in (
        {(e["sourceERCollectionId"], e["sourceEntityId"]), (e["destinationERCollectionId"], e["destinationEntityId"])}
        for e in body["data"]["edges"]))


@pytest.mark.parametrize("params, where", [
    ({"depth": "0"}, "depth"), ({"depth": "6"}, "depth"), ({"depth": "two"}, "depth"),
    ({"direction": "up"}, "direction"), ({"relationshipType": "flows"}, "relationshipType"),
    ({"entityType": "Unicorn"}, "entityType"), ({"limit": "10001"}, "limit"), ({"limit": "0"}, "limit"),
    ({"transitive": "true", "relationshipType": "hasPoint"}, "transitive"), ({"transitive": "true"}, "transitive"),
    ({"transitive": "true", "relationshipType": "feeds", "depth": "2"}, "depth"),
])
async def test_bad_parameters_are_400_naming_them(plant, params, where):
    body = await graph(plant, expect=400, **params)
    assert body["status"]["message"].startswith(f"{where}: ") and body["errors"][0]["path"] == where


async def test_unknown_parameters_unknown_entities_and_strangers_are_refused(plant):
    body = await graph(plant, expect=400, deepth="2")
    assert body["status"]["message"].startswith("Unknown query parameter deepth")
    await graph(plant, "nobody", expect=404)
    await graph(plant.as_("mallory"), expect=403)
    await graph(plant, "s1", "secret", expect=403)


@pytest.mark.slow
async def test_depth_d_costs_d_plus_1_storage_calls_whatever_the_frontier(counted):  # noqa: F811
    api, proxy = counted
    await api.register("hub")
    await api.register("far")
    await api.entities("hub", [entity("root", B + "AHU")] + [entity(f"v{n:02d}", B + "VAV") for n in range(60)])
    await api.entities("far", [entity(f"z{n:02d}", B + "HVAC_Zone") for n in range(60)])
    await write(api, "hub", [brick(f"r{n:02d}", "root", "feeds", f"v{n:02d}") for n in range(60)])
    await write(api, "hub", [brick(f"s{n:02d}", f"v{n:02d}", "feeds", f"z{n:02d}", "far") for n in range(60)])
    for depth in (1, 2, 3):
        body, calls = await calls_of(proxy, lambda: graph(api, "root", "hub", depth=str(depth)))
        assert len(body["data"]["nodes"]) == (61 if depth == 1 else 121)
        storage_calls = Counter({name: n for name, n in calls.items() if name != "get_acl"})
        assert storage_calls == Counter(find_frontier_edges=depth, get_current_across=1)
        assert calls["get_acl"] <= 2  # the header's collection, and "far" once it is met


# ---- POST /apollo/er/graph/query ------------------------------------------------------------------------------------

async def match(api, pattern: dict, collection: str = "plant", expect: int = 200, **kwargs) -> dict:
    return await api.call("POST", "/apollo/er/graph/query", expect, collection=collection, json_body=pattern,
                          schema="graph-matches" if expect == 200 else None, **kwargs)


def ids(body: dict) -> list[tuple[str, str]]:
    return [(item["erCollectionId"], item["id"]) for item in body["data"]]


async def test_a_pattern_answers_the_distinct_end_entities(plant):
    points_of_vavs = {"start": {"entityId": "ahu1"},
                      "hops": [{"relationshipType": "feeds", "entityType": "VAV"},
                               {"relationshipType": "BRICK_1_4__hasPoint", "entityType": "Point"}]}
    body = await match(plant, points_of_vavs)
    assert ids(body) == [("points", "pt1")] and body["data"][0]["entity"]["entityType"].endswith("Sensor")
    assert body["paging"] == {"totalCount": 1, "continuationToken": None}
    downstream_zones = {"start": {"entityId": "ahu1"},
                        "hops": [{"relationshipType": "feeds", "transitive": True, "entityType": "HVAC_Zone"}]}
    assert ids(await match(plant, downstream_zones)) == [("floors", "z1")]
    upstream = {"start": {"entityId": "z1"}, "hops": [{"relationshipType": "feeds", "direction": "incoming",
                                                        "transitive": True}]}
    assert ids(await match(plant, upstream, "floors")) == [("plant", "ahu1"), ("plant", "vav1"), ("plant", "vav2")]


async def test_a_pattern_answers_paths_and_each_caller_sees_only_what_it_may_read(plant):
    from_every_ahu = {"start": {"entityType": "AHU"}, "hops": [{"relationshipType": "feeds"}], "return": "paths"}
    body = await match(plant, from_every_ahu)
    assert body["data"] == [{"entities": [{"erCollectionId": "plant", "id": "ahu1"},
                                          {"erCollectionId": "plant", "id": "vav1"}],
                             "relationships": [{"sourceERCollectionId": "plant", "id": "f1"}]}]
    carol = await match(plant.as_("carol"), from_every_ahu)
    assert [[entity["id"] for entity in path["entities"]] for path in carol["data"]] == [["ahu1", "vav1"],
                                                                                         ["ahu2", "s1"]]
    chain = {"start": {"entityId": "ahu1"}, "return": "paths",
             "hops": [{"relationshipType": "feeds", "transitive": True}, {"relationshipType": "hasPoint"}]}
    body = await match(plant, chain)
    assert body["data"] == [{"entities": [{"erCollectionId": "plant", "id": "ahu1"},
                                          {"erCollectionId": "plant", "id": "vav1"},
                                          {"erCollectionId": "points", "id": "pt1"}],
                             "relationships": [None, {"sourceERCollectionId": "plant", "id": "p1"}]}]
    assert (await match(plant.as_("carol"), chain))["data"] == []  # carol cannot read the points


async def test_pattern_matches_page_with_signed_tokens_bound_to_the_pattern(plant):
    pattern = {"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "feeds", "transitive": True}]}
    seen, token = [], None
    while True:
        body = await match(plant, pattern, headers={"PageSize": "1", **({"continuationToken": token} if token else {})})
        seen += ids(body)
        assert body["paging"]["totalCount"] == 4
        token = body["paging"]["continuationToken"]
        if token is None:
            break
    assert seen == [("floors", "z1"), ("plant", "ahu1"), ("plant", "vav1"), ("plant", "vav2")]
    first = await match(plant, pattern, headers={"PageSize": "1"})
    other = {**pattern, "return": "paths"}
    body = await match(plant, other, expect=400, headers={"continuationToken": first["paging"]["continuationToken"]})
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


async def test_paths_over_parallel_relationships_page_one_by_one_without_loss(plant):
    await write(plant, "plant", [brick("f0", "ahu1", "feeds", "vav1")])  # a second relationship AHU-1 -> VAV-1
    pattern = {"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "feeds"}], "return": "paths"}
    seen, token = [], None
    while True:
        body = await match(plant, pattern, headers={"PageSize": "1", **({"continuationToken": token} if token else {})})
        seen += [(path["entities"][1]["id"], path["relationships"][0]["id"]) for path in body["data"]]
        token = body["paging"]["continuationToken"]
        if token is None:
            break
    assert seen == [("vav1", "f0"), ("vav1", "f1")]


@pytest.mark.parametrize("pattern, where", [
    ({"hops": [{"relationshipType": "feeds"}]}, "/"),
    ({"start": {"entityId": "ahu1"}, "hops": []}, "/hops"),
    ({"start": {"entityId": "ahu1", "entityType": "AHU"}, "hops": [{"relationshipType": "feeds"}]}, "/start"),
    ({"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "flows"}]}, "/hops/0/relationshipType"),
    ({"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "feeds"}, {"relationshipType": "hasPoint",
                                                                              "entityType": "Unicorn"}]},
     "/hops/1/entityType"),
    ({"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "hasPoint", "transitive": True}]},
     "/hops/0/transitive"),
    ({"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "feeds", "direction": "up"}]}, "/hops/0/direction"),
    ({"start": {"entityType": "Unicorn"}, "hops": [{"relationshipType": "feeds"}]}, "/start/entityType"),
    ({"start": {"entityId": "ahu1"}, "hops": [{"relationshipType": "feeds", "depth": 2}]}, "/hops/0"),
])
async def test_a_bad_pattern_is_400_naming_the_field(plant, pattern, where):
    body = await match(plant, pattern, expect=400)
    assert body["status"]["message"].startswith(f"{where}: ") and body["errors"][0]["path"] in (where, "")


async def test_pattern_refusals_outside_the_body(plant):
    pattern = {"start": {"entityId": "nobody"}, "hops": [{"relationshipType": "feeds"}]}
    await match(plant, pattern, expect=404)
    await match(plant, {**pattern, "start": {"entityId": "ahu1"}}, expect=400, params={"depth": "2"})
    await match(plant.as_("mallory"), pattern, expect=403)
