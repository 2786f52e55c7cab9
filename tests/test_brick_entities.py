"""What Brick says about an entity, kept: every class (``additionalEntityTypes``) and ``brickStatements``."""

from __future__ import annotations

import pytest

from tests.api_fixtures import entity

COLLECTION = "c1"
BRICK = "https://brickschema.org/schema/Brick#"
LABEL = {"predicate": "http://www.w3.org/2000/01/rdf-schema#label", "literal": "Supply air temp", "language": "en"}
UNIT = {"predicate": BRICK + "hasUnit", "iri": "http://qudt.org/vocab/unit/DEG_F"}
TIMESERIES = {"predicate": "https://brickschema.org/schema/Brick/ref#hasExternalReference", "node": [
    {"predicate": "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
     "iri": "https://brickschema.org/schema/Brick/ref#TimeseriesReference"},
    {"predicate": "https://brickschema.org/schema/Brick/ref#hasTimeseriesId", "literal": "a7f1-33"},
]}
VALUE = {"predicate": BRICK + "value", "literal": "21.5", "datatype": "http://www.w3.org/2001/XMLSchema#decimal"}


@pytest.fixture
async def collection(api):
    await api.register(COLLECTION)
    return api


async def test_classes_and_statements_are_stored_and_read_back(collection):
    sent = entity("sat-1", "BRICK_1_4__Supply_Air_Temperature_Sensor",
                  additionalEntityTypes=["BRICK_1_4__Discharge_Air_Temperature_Sensor"],
                  brickStatements=[LABEL, UNIT, TIMESERIES, VALUE])
    body = await collection.entities(COLLECTION, sent)
    assert [s["id"] for s in body["data"]["responses"]["success"]] == ["sat-1"]
    [stored] = (await collection.call("GET", "/apollo/er/entities/sat-1", 200, collection=COLLECTION))["data"]
    assert stored["additionalEntityTypes"] == ["BRICK_1_4__Discharge_Air_Temperature_Sensor"]
    assert stored["brickStatements"] == [LABEL, UNIT, TIMESERIES, VALUE]


async def test_an_additional_class_outside_the_catalog_fails_the_item(collection):
    body = await collection.entities(COLLECTION, [
        entity("a", "BRICK_1_4__AHU", additionalEntityTypes=["BRICK_1_4__Flux_Capacitor"]), entity("b")])
    [failure] = body["data"]["responses"]["failure"]
    assert failure == {**failure, "id": "a", "message":
                       "Entity type BRICK_1_4__Flux_Capacitor (additionalEntityTypes) not found in the entity type catalog"}
    await collection.call("GET", "/apollo/er/entities/a", 404, collection=COLLECTION)


@pytest.mark.parametrize("statement, path", [
    ({"predicate": "not an iri", "literal": "x"}, "/0/brickStatements/0/predicate"),
    ({"predicate": BRICK + "value", "literal": "1", "iri": BRICK + "AHU"}, "/0/brickStatements/0"),
    ({"predicate": BRICK + "value", "literal": "1", "datatype": BRICK + "x", "language": "en"}, "/0/brickStatements/0"),
    ({"predicate": BRICK + "value", "iri": BRICK + "x", "language": "en"}, "/0/brickStatements/0"),
    ({"predicate": BRICK + "a", "node": [{"predicate": BRICK + "b", "node": [
        {"predicate": BRICK + "c", "node": [{"predicate": BRICK + "d", "literal": "too deep"}]}]}]},
     "/0/brickStatements/0/node/0/node/0"),
])
async def test_a_statement_of_the_wrong_shape_is_400_with_its_path(collection, statement, path):
    body = await collection.entities(COLLECTION, entity("a", brickStatements=[statement]), expect=400)
    assert path in {error["path"] for error in body["errors"]}
    await collection.call("GET", "/apollo/er/entities/a", 404, collection=COLLECTION)


async def test_a_deprecated_name_is_accepted_stored_as_sent_and_checked_as_its_replacement(collection):
    # Brick 1.4 marks Condenser owl:deprecated, brick:isReplacedBy Condensing_Unit, and no longer defines it
    await collection.entities(COLLECTION, [entity("c-1", "BRICK_1_4__Condenser"), entity("room", "BRICK_1_4__Room")])
    [stored] = (await collection.call("GET", "/apollo/er/entities/c-1", 200, collection=COLLECTION))["data"]
    assert (stored["entityType"], stored["brickEntitySubType"], stored["brickEntityType"]) == (
        "BRICK_1_4__Condenser", "BRICK_1_4__Condensing_Unit", "BRICK_1_4__Equipment")
    body = await collection.relationships(COLLECTION, {
        "id": "r1", "sourceEntityId": "c-1", "destinationEntityId": "room", "brickRelationshipType": "BRICK_1_4__hasLocation"})
    assert body["data"]["responses"]["success"][0]["relationshipType"] == "BRICK_1_4__hasLocation_Equipment_Location"


async def ids_of_type(api, type_name: str, subtypes: bool = False) -> list[str]:
    path = f"/apollo/er/entitytypes/{type_name}/entities" + ("?includeSubtypes=true" if subtypes else "")
    return sorted(doc["id"] for doc in (await api.call("GET", path, 200, collection=COLLECTION))["data"])


async def test_a_deprecated_class_is_stored_as_sent_and_listed_as_its_replacement(collection):
    # Brick 1.4 still defines Chilled_Water_Supply_Temperature_Sensor as a class, owl:deprecated,
    # brick:isReplacedBy Leaving_Chilled_Water_Temperature_Sensor
    old, new = "BRICK_1_4__Chilled_Water_Supply_Temperature_Sensor", "BRICK_1_4__Leaving_Chilled_Water_Temperature_Sensor"
    await collection.entities(COLLECTION, [entity("old", old), entity("new", new), entity("ahu", "BRICK_1_4__AHU")])
    [stored] = (await collection.call("GET", "/apollo/er/entities/old", 200, collection=COLLECTION))["data"]
    assert (stored["entityType"], stored["brickEntitySubType"], stored["brickEntityType"]) == (
        old, new, "BRICK_1_4__Point")
    assert await ids_of_type(collection, new) == await ids_of_type(collection, old) == ["new", "old"]
    assert await ids_of_type(collection, "BRICK_1_4__Chilled_Water_Temperature_Sensor", subtypes=True) == ["new", "old"]
    body = await collection.relationships(COLLECTION, {
        "id": "r1", "sourceEntityId": "old", "destinationEntityId": "ahu", "brickRelationshipType": "BRICK_1_4__isPointOf"})
    assert body["data"]["responses"]["success"][0]["relationshipType"] == "BRICK_1_4__isPointOf_Point_Equipment"


async def test_a_class_of_an_older_brick_version_stands_for_its_nearest_current_superclass(collection):
    # Brick 1.1 and 1.2 had Electrical_Power_Sensor, a Power_Sensor; Brick 1.4 has no class of that name
    await collection.entities(COLLECTION, entity("p-1", "BRICK_1_4__Electrical_Power_Sensor"))
    [stored] = (await collection.call("GET", "/apollo/er/entities/p-1", 200, collection=COLLECTION))["data"]
    assert (stored["entityType"], stored["brickEntitySubType"]) == (
        "BRICK_1_4__Electrical_Power_Sensor", "BRICK_1_4__Power_Sensor")
    assert await ids_of_type(collection, "BRICK_1_4__Power_Sensor") == ["p-1"]


async def test_an_unknown_name_is_refused_with_the_closest_known_names(collection):
    body = await collection.entities(COLLECTION, entity("m-1", "BRICK_1_4__Electric_Power_Meter"))
    assert body["data"]["responses"]["failure"][0]["message"] == (
        "Entity type BRICK_1_4__Electric_Power_Meter not found in the entity type catalog; closest known names: "
        "BRICK_1_4__Electric_Power_Sensor, BRICK_1_4__Electrical_Meter")


def brick_named(relationship_id: str, source: str, destination: str, relationship: str) -> dict:
    return {"id": relationship_id, "sourceEntityId": source, "destinationEntityId": destination,
            "brickRelationshipType": "BRICK_1_4__" + relationship}


async def test_subclass_aware_lists_and_filters_find_an_entity_by_its_additional_classes(collection):
    # a rooftop unit modelled as a Room and an AHU: its entityType is the Room
    await collection.entities(COLLECTION, [
        entity("rtu", "BRICK_1_4__Room", additionalEntityTypes=["BRICK_1_4__AHU"]),
        entity("ahu", "BRICK_1_4__AHU"), entity("zone", "BRICK_1_4__HVAC_Zone")])
    assert await ids_of_type(collection, "BRICK_1_4__Equipment", subtypes=True) == ["ahu", "rtu"]
    assert await ids_of_type(collection, "BRICK_0_4__AHU", subtypes=True) == ["ahu", "rtu"]
    assert await ids_of_type(collection, "BRICK_1_4__AHU") == ["ahu"]  # the exact list reads entityType alone
    assert await ids_of_type(collection, "BRICK_1_4__Location", subtypes=True) == ["rtu", "zone"]
    await collection.relationships(COLLECTION, [
        brick_named("f1", "rtu", "zone", "feeds"), brick_named("f2", "ahu", "rtu", "feeds")])
    graph = await collection.call("GET", "/apollo/er/entities/zone/graph", 200, collection=COLLECTION,
                                  params={"depth": "2", "entityType": "AHU"})
    assert sorted(node["id"] for node in graph["data"]["nodes"]) == ["ahu", "rtu", "zone"]
    pattern = await collection.call("POST", "/apollo/er/graph/query", 200, collection=COLLECTION, json_body={
        "start": {"entityType": "AHU"}, "hops": [{"relationshipType": "feeds", "entityType": "AHU"}]})
    assert [match["id"] for match in pattern["data"]] == ["rtu"]


async def test_a_relationship_end_fits_when_one_of_the_entitys_classes_does(collection):
    await collection.entities(COLLECTION, [
        entity("rtu", "BRICK_1_4__Room", additionalEntityTypes=["BRICK_1_4__AHU"]),
        entity("room", "BRICK_1_4__Room"), entity("zone", "BRICK_1_4__HVAC_Zone")])
    body = await collection.relationships(COLLECTION, [
        {"id": "r1", "sourceEntityId": "rtu", "destinationEntityId": "zone",
         "relationshipType": "BRICK_1_4__feeds_Equipment_Location"},
        {"id": "r2", "sourceEntityId": "room", "destinationEntityId": "zone",
         "relationshipType": "BRICK_1_4__feeds_Equipment_Location"},
        brick_named("r3", "rtu", "zone", "isFedBy"), brick_named("r4", "zone", "rtu", "isFedBy")])
    responses = body["data"]["responses"]
    assert [(s["id"], s.get("relationshipType")) for s in responses["success"]] == [
        ("r1", None), ("r4", "BRICK_1_4__isFedBy_Location_Equipment")]
    assert {f["id"]: f["message"] for f in responses["failure"]} == {
        "r2": "Source entity room of type BRICK_1_4__Room is not a BRICK_1_4__Equipment as relationship type "
              "BRICK_1_4__feeds_Equipment_Location requires",
        "r3": "No relationship type of Brick relationship BRICK_1_4__isFedBy joins a source of type BRICK_1_4__Room "
              "to a destination of type BRICK_1_4__HVAC_Zone"}
