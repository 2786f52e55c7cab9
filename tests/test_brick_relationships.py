"""Relationships sent by their Brick name alone (``brickRelationshipType``): the type the service picks."""

from __future__ import annotations

import pytest

from erapi import brick_relationships
from erapi.catalog import Catalog, load_catalog
from tests.api_fixtures import entity

COLLECTION = "brick_names"
CATALOG = load_catalog()


def by_name(relationship_id: str, source: str, destination: str, brick_name: str, **extra) -> dict:
    return {"id": relationship_id, "sourceEntityId": source, "destinationEntityId": destination,
            "brickRelationshipType": brick_name, **extra}


@pytest.fixture
async def plant(api):
    await api.register(COLLECTION)
    await api.entities(COLLECTION, [
        entity("ahu-1", "BRICK_1_4__AHU"), entity("vav-1", "BRICK_1_4__VAV"),
        entity("sensor-1", "BRICK_1_4__Air_Temperature_Sensor"), entity("valve-1", "BRICK_1_4__Bypass_Valve"),
        entity("room-1", "BRICK_1_4__Room"), entity("old-ahu", "BRICK_0_4__AHU"),
    ])
    return api


async def write_one(api, item: dict) -> dict:
    body = await api.relationships(COLLECTION, item)
    return body["data"]["responses"]


async def test_the_most_specific_fitting_type_is_chosen_and_reported(plant):
    responses = await write_one(plant, by_name("r1", "vav-1", "ahu-1", "BRICK_1_4__isFedBy"))
    [success] = responses["success"]
    chosen = "BRICK_1_4__isFedBy_HVAC_Equipment_HVAC_Equipment"  # not the wider isFedBy_Equipment_Equipment
    assert success == {**success, "message": "Relationship upserted successfully", "relationshipType": chosen}
    [stored] = (await plant.relationship(COLLECTION, "r1"))["data"]
    assert (stored["relationshipType"], stored["brickRelationshipType"], stored["brickRelationshipName"]) == (
        chosen, "BRICK_1_4__isFedBy", "isFedBy")


async def test_a_tie_of_equally_deep_ends_goes_to_the_first_name(plant):
    # an AHU feeding a Bypass_Valve (an HVAC_Valve: both HVAC_Equipment and Valve) fits feeds_HVAC_Equipment_*
    # towards HVAC_Equipment and towards Valve; neither refines the other and both ends are 3 steps deep
    responses = await write_one(plant, by_name("r1", "ahu-1", "valve-1", "BRICK_1_4__feeds"))
    assert responses["success"][0]["relationshipType"] == "BRICK_1_4__feeds_HVAC_Equipment_HVAC_Equipment"


async def test_no_fitting_type_fails_the_item_naming_the_relationship_and_both_classes(plant):
    responses = await write_one(plant, by_name("r1", "sensor-1", "ahu-1", "BRICK_1_4__isFedBy"))
    assert responses["failure"][0]["message"] == (
        "No relationship type of Brick relationship BRICK_1_4__isFedBy joins a source of type "
        "BRICK_1_4__Air_Temperature_Sensor to a destination of type BRICK_1_4__AHU")
    await plant.relationship(COLLECTION, "r1", expect=404)


async def test_an_unknown_brick_relationship_fails_the_item(plant):
    responses = await write_one(plant, by_name("r1", "vav-1", "ahu-1", "BRICK_1_4__likes"))
    assert responses["failure"][0]["message"] == (
        "Brick relationship BRICK_1_4__likes not found in the relationship type catalog")


async def test_a_missing_end_fails_the_item_as_for_a_named_type(plant):
    responses = await write_one(plant, by_name("r1", "vav-1", "ghost", "BRICK_1_4__isFedBy"))
    assert responses["failure"][0]["message"] == f"Destination entity ghost not found in ERCollection {COLLECTION}"


async def test_a_starter_name_keeps_the_starter_type_name_when_there_is_one(plant):
    # BRICK_0_4__contains is Brick 1.x's isLocationOf; the starter set has contains_Location_Equipment
    responses = await write_one(plant, by_name("r1", "room-1", "old-ahu", "BRICK_0_4__contains"))
    assert responses["success"][0]["relationshipType"] == "BRICK_0_4__contains_Location_Equipment"
    [stored] = (await plant.relationship(COLLECTION, "r1"))["data"]
    assert stored["brickRelationshipType"] == "BRICK_0_4__isLocationOf"
    # the most specific isFedBy between two AHUs has no starter name: the generated one is stored
    responses = await write_one(plant, by_name("r2", "old-ahu", "ahu-1", "BRICK_0_4__isFedBy"))
    assert responses["success"][0]["relationshipType"] == "BRICK_1_4__isFedBy_HVAC_Equipment_HVAC_Equipment"


async def test_sending_the_same_relationship_by_name_again_updates_it(plant):
    await write_one(plant, by_name("r1", "vav-1", "ahu-1", "BRICK_1_4__isFedBy"))
    responses = await write_one(plant, by_name("r1", "vav-1", "ahu-1", "BRICK_1_4__isFedBy", relationshipName="x"))
    assert [s["id"] for s in responses["success"]] == ["r1"]
    [stored] = (await plant.relationship(COLLECTION, "r1", params={"includeSystemData": "true"}))["data"]
    assert (stored["relationshipName"], stored["sysData"]["sysRelationshipVersion"]) == ("x", 2)


async def test_an_inverse_is_written_for_a_relationship_sent_by_name(plant):
    body = await plant.call("POST", "/apollo/er/relationships", 207, collection=COLLECTION, schema="batch",
                            json_body=by_name("r1", "vav-1", "ahu-1", "BRICK_1_4__isFedBy"),
                            params={"createInverse": "true"})
    assert len(body["data"]["responses"]["success"]) == 2
    inverse_id = body["data"]["responses"]["success"][1]["id"]
    [inverse] = (await plant.relationship(COLLECTION, inverse_id))["data"]
    assert (inverse["relationshipType"], inverse["sourceEntityId"]) == (
        "BRICK_1_4__feeds_HVAC_Equipment_HVAC_Equipment", "ahu-1")


async def test_an_item_with_neither_type_nor_brick_name_is_400(plant):
    item = {"id": "r1", "sourceEntityId": "vav-1", "destinationEntityId": "ahu-1"}
    body = await plant.relationships(COLLECTION, item, expect=400)
    assert body["errors"] == [{"path": "/0", "message": '"relationshipType" is a required property'}]


# ---- the rule, on the shipped catalog and on small catalogs made for each tie ---------------------------------


def small_catalog(classes: dict[str, list[str]], ends: list[tuple[str, str]]) -> Catalog:
    entity_types = [{"name": name, "brickClass": name, "parents": parents, "brickEntityType": name}
                    for name, parents in classes.items()]
    relationship_types = [{"name": f"r_{source}_{destination}", "sourceEntityType": source,
                           "destinationEntityType": destination, "brickRelationshipName": "r",
                           "brickRelationshipType": "X__r", "inverse": None} for source, destination in ends]
    return Catalog(entity_types, relationship_types, {})


def test_among_incomparable_types_the_deepest_ends_win():
    # Leaf is both a Shallow and a Deep; neither r_Shallow_Target nor r_Deep_Target refines the other
    catalog = small_catalog({"Entity": [], "Shallow": ["Entity"], "Middle": ["Entity"], "Deep": ["Middle"],
                             "Leaf": ["Shallow", "Deep"], "Target": ["Entity"]},
                            [("Shallow", "Target"), ("Deep", "Target"), ("Entity", "Entity")])
    assert brick_relationships.choose(catalog, "X__r", ("Leaf",), ("Target",)).name == "r_Deep_Target"


def test_a_tie_of_depth_goes_to_the_first_name():
    catalog = small_catalog({"Entity": [], "Beta": ["Entity"], "Alpha": ["Entity"], "Leaf": ["Beta", "Alpha"]},
                            [("Beta", "Entity"), ("Alpha", "Entity")])
    assert brick_relationships.choose(catalog, "X__r", ("Leaf",), ("Leaf",)).name == "r_Alpha_Entity"


@pytest.mark.parametrize("brick_name", sorted(CATALOG.by_brick_relationship))
def test_the_choice_fits_both_ends_and_no_fitting_type_refines_it(brick_name):
    classes = sorted(CATALOG.entity_types)[::37]  # a spread of every kind of class
    for source in classes:
        for destination in classes:
            fitting = [t for t in CATALOG.by_brick_relationship[brick_name]
                       if CATALOG.is_a(source, t.source) and CATALOG.is_a(destination, t.destination)]
            chosen = brick_relationships.choose(CATALOG, brick_name, (source,), (destination,))
            assert (chosen is None) == (not fitting)
            if chosen is not None:
                assert chosen in fitting
                assert not any(t is not chosen and CATALOG.is_a(t.source, chosen.source)
                               and CATALOG.is_a(t.destination, chosen.destination) for t in fitting)
