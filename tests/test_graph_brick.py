"""The questions of docs/API.md (*Graph examples*) on a real Brick model, loaded through the API over three
collections, each checked against the same question asked of the source file in SPARQL: same entities, nothing
more, nothing less; and, for a second caller who cannot read the points, the same answers without them."""

from __future__ import annotations

import pytest

from erapi.catalog import load_catalog
from tests import brick_model
from tests.brick_model import sparql

pytestmark = pytest.mark.slow  # 1,673 entities and 2,000 relationships written through the API

# The questions, as SPARQL over the source file. Brick lets a model state a fact either way round (feeds or
# isFedBy), so each relationship is asked for with its inverse, as the API follows them.
POINTS_OF_VAVS_FED_BY_AHU_A1 = """SELECT DISTINCT ?point WHERE {
    soda:ahu_A1 (brick:feeds|^brick:isFedBy) ?vav . ?vav a/rdfs:subClassOf* brick:VAV .
    ?vav (brick:hasPoint|^brick:isPointOf) ?point . ?point a/rdfs:subClassOf* brick:Point }"""
DOWNSTREAM_OF_AHU_A1 = """SELECT DISTINCT ?x WHERE {
    soda:ahu_A1 (brick:feeds|^brick:isFedBy)+ ?x . FILTER (?x != soda:ahu_A1) }"""
ON_FLOOR_4 = """SELECT DISTINCT ?x WHERE {
    soda:floor_4 (brick:hasPart|^brick:isPartOf|brick:isLocationOf|^brick:hasLocation)+ ?x }"""

POINTS_PATTERN = {"start": {"entityId": "ahu_A1"},
                  "hops": [{"relationshipType": "feeds", "entityType": "VAV"},
                           {"relationshipType": "hasPoint", "entityType": "Point"}]}
FLOOR_PATTERN = {"start": {"entityId": "floor_4"},
                 "hops": [{"relationshipType": ["hasPart", "isLocationOf"], "transitive": True}]}
DOWNSTREAM = {"transitive": "true", "direction": "outgoing", "relationshipType": "feeds", "limit": "10000"}


async def matched(api, collection: str, pattern: dict) -> set[str]:
    ids, token = [], None
    while True:
        body = await api.call("POST", "/apollo/er/graph/query", 200, collection=collection, json_body=pattern,
                              schema="graph-matches",
                              headers={"PageSize": "1000", **({"continuationToken": token} if token else {})})
        ids += [item["id"] for item in body["data"]]
        token = body["paging"]["continuationToken"]
        if token is None:
            assert len(ids) == len(set(ids)) == body["paging"]["totalCount"]
            return set(ids)


async def graph(api, entity_id: str, collection: str, **params) -> dict:
    body = await api.call("GET", f"/apollo/er/entities/{entity_id}/graph", 200, collection=collection,
                          params=params, schema="graph")
    return body["data"]


async def test_the_documented_questions_match_sparql_on_the_soda_hall_model(api):
    catalog = load_catalog()
    known, refused = await brick_model.load(api, catalog)
    assert len(known) > 1000 and len(set(home for _, home in known.values())) == 3
    assert len(refused) == 5 and all("isLocationOf" in failure["id"] for failure in refused)  # AHU is no Location

    points = sparql(POINTS_OF_VAVS_FED_BY_AHU_A1, with_ontology=True)
    assert len(points) > 100 and await matched(api, "soda_hvac", POINTS_PATTERN) == points

    downstream = await graph(api, "ahu_A1", "soda_hvac", **DOWNSTREAM)
    expected = sparql(DOWNSTREAM_OF_AHU_A1)
    assert len(expected) > 50 and {node["id"] for node in downstream["nodes"][1:]} == expected
    assert downstream["truncated"] is False

    on_floor = sparql(ON_FLOOR_4)
    assert {known[x][1] for x in on_floor} == {"soda_spaces", "soda_points"}  # rooms, and sensors located there
    assert await matched(api, "soda_spaces", FLOOR_PATTERN) == on_floor
    graph_on_floor = await graph(api, "floor_4", "soda_spaces", transitive="true", direction="outgoing",
                                 relationshipType=["hasPart", "isLocationOf"])
    assert {node["id"] for node in graph_on_floor["nodes"][1:]} == on_floor

    # a second caller, who may read the equipment and the spaces but not the points: nothing of them, anywhere
    await api.grant("soda_hvac", "bob", ["read"])
    await api.grant("soda_spaces", "bob", ["read"])
    bob = api.as_("bob")
    assert await matched(bob, "soda_hvac", POINTS_PATTERN) == set()
    assert {node["id"] for node in (await graph(bob, "ahu_A1", "soda_hvac", **DOWNSTREAM))["nodes"][1:]} == expected
    rooms = {x for x in on_floor if known[x][1] == "soda_spaces"}
    assert rooms and await matched(bob, "soda_spaces", FLOOR_PATTERN) == rooms
    for caller, sees_points in ((api, True), (bob, False)):
        neighbourhood = await graph(caller, "ahu_A1", "soda_hvac", depth="3")
        collections = {node["erCollectionId"] for node in neighbourhood["nodes"]}
        collections |= {edge[end] for edge in neighbourhood["edges"]
                        for end in ("sourceERCollectionId", "destinationERCollectionId")}
        assert ("soda_points" in collections) is sees_points
