"""The generated Brick 1.4 catalog at work: subclass-aware checks, old names, inverses, catalog endpoints."""

from __future__ import annotations

from erapi.writes.relationships import inverse_id
from tests.api_fixtures import entity, relationship


async def setup_building(api, collection="b1"):
    await api.register(collection)
    await api.entities(collection, [
        entity("ahu", "BRICK_1_4__AHU"),
        entity("vav", "BRICK_1_4__VAV"),
        entity("zone", "BRICK_1_4__HVAC_Zone"),
        entity("sensor", "BRICK_1_4__Supply_Air_Temperature_Sensor"),
    ])


def outcome(body):
    responses = body["data"]["responses"]
    return ([s["id"] for s in responses["success"]], {f["id"]: f["message"] for f in responses["failure"]})


async def test_feeds_from_an_ahu_to_a_vav_and_to_an_hvac_zone_is_accepted(api):
    await setup_building(api)
    body = await api.relationships("b1", [
        relationship("f1", "ahu", "vav", relationship_type="BRICK_1_4__feeds_Equipment_Equipment"),
        relationship("f2", "ahu", "zone", relationship_type="BRICK_1_4__feeds_Equipment_Location"),
    ])
    assert outcome(body) == (["f1", "f2"], {})
    [stored] = (await api.relationship("b1", "f2"))["data"]
    assert (stored["brickRelationshipName"], stored["brickRelationshipType"]) == ("feeds", "BRICK_1_4__feeds")


async def test_has_point_from_a_sensor_to_an_ahu_is_refused(api):
    await setup_building(api)
    body = await api.relationships("b1", [
        relationship("p1", "sensor", "ahu", relationship_type="BRICK_1_4__hasPoint_Equipment_Point"),
        relationship("p2", "ahu", "sensor", relationship_type="BRICK_1_4__hasPoint_Equipment_Point"),
    ])
    assert outcome(body) == (["p2"], {"p1": (
        "Source entity sensor of type BRICK_1_4__Supply_Air_Temperature_Sensor is not a BRICK_1_4__Equipment "
        "as relationship type BRICK_1_4__hasPoint_Equipment_Point requires")})


async def test_old_and_new_names_mix_and_each_client_keeps_its_own_scheme(api):
    await setup_building(api)
    await api.entities("b1", entity("old-ahu", "BRICK_0_4__AHU"))
    body = await api.relationships("b1", [
        relationship("old", "ahu", "old-ahu", relationship_type="BRICK_0_4__isFedBy_Equipment_Equipment"),
        relationship("new", "old-ahu", "vav", relationship_type="BRICK_1_4__feeds_Equipment_Equipment"),
    ])
    assert outcome(body) == (["old", "new"], {})
    [old] = (await api.relationship("b1", "old"))["data"]
    assert old["relationshipType"] == "BRICK_0_4__isFedBy_Equipment_Equipment"
    assert old["brickRelationshipType"] == "BRICK_0_4__isFedBy"
    entity_body = await api.call("GET", "/apollo/er/entities/old-ahu", 200, collection="b1")
    assert entity_body["data"][0]["brickEntityType"] == "BRICK_0_4__Equipment"
    # switching between an alias and the name it stands for is no change of type
    body = await api.relationships("b1", relationship("old", "ahu", "old-ahu",
                                                      relationship_type="BRICK_1_4__isFedBy_Equipment_Equipment"))
    assert outcome(body) == (["old"], {})


async def test_create_inverse_writes_the_inverse_with_a_derived_id(api):
    await setup_building(api)
    item = relationship("f1", "ahu", "vav", relationship_type="BRICK_1_4__feeds_Equipment_Equipment")
    body = await api.relationships("b1", item, params={"createInverse": "true"})
    inverse = inverse_id("b1", "f1")
    assert outcome(body) == (["f1", inverse], {})
    assert body["status"]["message"] == "Total number of Relationships Upserted:  2."
    [stored] = (await api.relationship("b1", inverse, params={"includeSystemData": "true"}))["data"]
    assert (stored["sourceEntityId"], stored["destinationEntityId"]) == ("vav", "ahu")
    assert stored["relationshipType"] == "BRICK_1_4__isFedBy_Equipment_Equipment"
    assert stored["inverseOf"] == "f1"
    assert stored["sysData"]["sysRelationshipVersion"] == 1
    # the request again, changed, updates the same inverse: the id is derived, not random
    again = await api.relationships("b1", {**item, "relationshipName": "second"}, params={"createInverse": "true"})
    assert outcome(again) == (["f1", inverse], {})
    [stored] = (await api.relationship("b1", inverse, params={"includeSystemData": "true"}))["data"]
    assert stored["sysData"]["sysRelationshipVersion"] == 2
    trackers = await api.status_logs("b1", {"relationshipid": inverse, "transactionid": again["transactionId"]})
    assert trackers["data"][0]["state"] == "Completed"


async def test_cross_collection_inverse_lives_in_the_destination_collection(api):
    await setup_building(api, "b1")
    await setup_building(api, "b2")
    item = relationship("f1", "ahu", "vav", relationship_type="BRICK_1_4__feeds_Equipment_Equipment",
                        destinationERCollectionId="b2")
    body = await api.relationships("b1", item, params={"createInverse": "true"})
    inverse = inverse_id("b1", "f1")
    assert outcome(body) == (["f1", inverse], {})
    [stored] = (await api.relationship("b2", inverse))["data"]
    assert (stored["sourceERCollectionId"], stored["destinationERCollectionId"]) == ("b2", "b1")
    await api.relationship("b1", inverse, expect=404)


async def test_cross_collection_inverse_needs_write_on_the_destination(api):
    await setup_building(api, "b1")
    bob = api.as_("bob")
    await bob.register("bobs")
    await bob.entities("bobs", entity("ahu", "BRICK_1_4__AHU"))
    await api.grant("b1", "bob", ["read"])  # bob may point at b1, not write into it
    item = relationship("f1", "ahu", "vav", relationship_type="BRICK_1_4__feeds_Equipment_Equipment",
                        destinationERCollectionId="b1")
    body = await bob.relationships("bobs", item, params={"createInverse": "true"})
    assert outcome(body) == (["f1"], {
        inverse_id("bobs", "f1"): "ERCollection b1 is not registered or the caller has no write grant on it"})
    await api.relationship("b1", inverse_id("bobs", "f1"), expect=404)


async def test_create_inverse_with_async_is_refused(api):
    await setup_building(api)
    item = relationship("f1", "ahu", "vav", relationship_type="BRICK_1_4__feeds_Equipment_Equipment")
    body = await api.relationships("b1", item, expect=400, params={"createInverse": "true"},
                                   headers={"async": "true"})
    assert body["status"]["message"] == "createInverse=true is available on synchronous requests only (async: false)"


async def test_relationship_types_filtered_by_class_are_subclass_aware(api):
    body = await api.call("GET", "/apollo/schema/relationshiptypes", 200, params={
        "sourceEntityType": "BRICK_1_4__AHU", "destinationEntityType": "BRICK_1_4__HVAC_Zone"})
    names = {t["name"] for t in body["data"]}
    assert "BRICK_1_4__feeds_Equipment_Location" in names
    assert "BRICK_1_4__feeds_Equipment_Equipment" not in names
    assert body["paging"]["totalCount"] == len(body["data"])
    points = await api.call("GET", "/apollo/schema/relationshiptypes", 200, params={
        "sourceEntityType": "BRICK_1_4__Temperature_Sensor", "destinationEntityType": "BRICK_1_4__AHU"})
    assert not any(t["brickRelationshipName"] == "hasPoint" for t in points["data"])
    unknown = await api.call("GET", "/apollo/schema/relationshiptypes", 400,
                             params={"sourceEntityType": "BRICK_1_4__Unicorn"})
    assert unknown["status"]["message"] == "sourceEntityType BRICK_1_4__Unicorn is not in the entity type catalog"


async def test_entity_type_shows_ancestors_and_children(api):
    body = await api.call("GET", "/apollo/schema/entitytypes/BRICK_1_4__HVAC_Equipment", 200)
    [hvac] = body["data"]
    assert "BRICK_1_4__Equipment" in hvac["ancestors"]
    assert "BRICK_1_4__AHU" in hvac["children"]
    [ahu] = (await api.call("GET", "/apollo/schema/entitytypes/BRICK_0_4__AHU", 200))["data"]
    assert ahu["name"] == "BRICK_1_4__AHU"
    await api.call("GET", "/apollo/schema/entitytypes/BRICK_1_4__Unicorn", 404)


async def test_relationship_type_lists_the_entity_types_it_joins(api):
    body = await api.call("GET", "/apollo/schema/relationshiptypes/BRICK_1_4__feeds_Equipment_Location/entitytypes", 200)
    [pairs] = body["data"]
    assert "BRICK_1_4__AHU" in pairs["sourceEntityTypes"]
    assert "BRICK_1_4__HVAC_Zone" in pairs["destinationEntityTypes"]
    assert "BRICK_1_4__AHU" not in pairs["destinationEntityTypes"]
