"""POST /apollo/er/entities and GET /apollo/er/entities/{id}: derived Brick fields, per-item failures, versions, rights."""

from __future__ import annotations

import urllib.parse

import pytest

from tests.api_fixtures import entity

AHU = "BRICK_0_4__AHU"
SENSOR = "BRICK_0_4__Temperature_Sensor"


def ids(responses: dict, outcome: str) -> list[str]:
    return [item["id"] for item in responses["data"]["responses"].get(outcome, [])]


async def stored(api, collection: str, entity_id: str, system_data: bool = True) -> dict:
    params = {"includeSystemData": "true"} if system_data else None
    [document] = (await api.call("GET", f"/apollo/er/entities/{entity_id}", 200, collection=collection,
                                 params=params))["data"]
    return document


async def assert_nothing_written(api, collection: str, entity_id: str) -> None:
    await api.call("GET", f"/apollo/er/entities/{entity_id}", 404, collection=collection)
    await api.status_logs(collection, {"entityid": entity_id}, expect=404)


@pytest.fixture
async def site(api):
    await api.register("site")
    return api


# ---- writes that succeed ----------------------------------------------------------------------------------------


async def test_single_object_is_upserted_with_derived_brick_fields(site):
    body = await site.entities("site", entity("ahu-1", AHU, floor=3))
    assert body["status"] == {"message": "Total number of Entities Upserted:  1.", "code": "207"}
    assert body["_headers"]["X-Transaction-Id"] == body["transactionId"]
    [success] = body["data"]["responses"]["success"]
    assert body["data"]["responses"]["failure"] == []
    assert success["id"] == "ahu-1"
    assert success["message"] == "Entity upserted successfully"
    document = await stored(site, "site", "ahu-1", system_data=False)
    assert document == {"id": "ahu-1", "entityType": AHU, "entityName": "ahu-1", "floor": 3,
                        "brickEntityType": "BRICK_0_4__Equipment", "brickEntitySubType": AHU, "isActive": True}


async def test_array_is_upserted_in_request_order_and_each_gets_its_own_class(site):
    body = await site.entities("site", [entity("s-1", SENSOR), entity("ahu-1", AHU), entity("zone-1", "BRICK_0_4__HVAC_Zone")])
    assert body["status"]["message"] == "Total number of Entities Upserted:  3."
    assert ids(body, "success") == ["s-1", "ahu-1", "zone-1"]
    sensor = await stored(site, "site", "s-1")
    assert (sensor["brickEntityType"], sensor["brickEntitySubType"]) == ("BRICK_0_4__Point", SENSOR)
    zone = await stored(site, "site", "zone-1")
    assert (zone["brickEntityType"], zone["brickEntitySubType"]) == ("BRICK_0_4__Location", "BRICK_0_4__HVAC_Zone")


async def test_tracker_urls_use_entityid_and_resolve_to_a_completed_record(site):
    body = await site.entities("site", entity("ahu-1"))
    [success] = body["data"]["responses"]["success"]
    transaction_id = body["transactionId"]
    assert success["tracker"].endswith(f"/apollo/status/logs?entityid=ahu-1&transactionid={transaction_id}")
    path = "/" + success["tracker"].split("://", 1)[1].split("/", 1)[1]
    logs = await site.call("GET", path, 200, collection="site", schema="status-logs")
    [record] = logs["data"]
    assert record["requestObject"] == "Entity" and record["requestAction"] == "Upsert"
    assert record["state"] == "Completed" and record["message"] == "Entity upserted successfully"
    assert [s["state"] for s in record["stateHistory"]] == ["Requested", "Processing", "Completed"]
    assert record["serviceData"] == {"erCollectionId": "site", "entityId": "ahu-1", "relationshipId": None}
    assert record["transactionId"] == record["correlationId"] == transaction_id


async def test_tracker_url_of_an_id_with_reserved_characters_resolves(site):
    odd = "ahu 1&x=y#z?"
    body = await site.entities("site", entity(odd))
    [success] = body["data"]["responses"]["success"]
    assert f"entityid={urllib.parse.quote(odd, safe='')}&" in success["tracker"]
    path = "/" + success["tracker"].split("://", 1)[1].split("/", 1)[1]
    logs = await site.call("GET", path, 200, collection="site", schema="status-logs")
    assert [r["serviceData"]["entityId"] for r in logs["data"]] == [odd]


async def test_full_object_update_increments_the_version_and_keeps_the_first(site, storage_name):
    from erapi.keys import storage_key

    await site.entities("site", entity("ahu-1", note="first"))
    first = await stored(site, "site", "ahu-1")
    assert first["sysData"]["sysEntityVersion"] == 1
    await site.entities("site", entity("ahu-1", entityName="renamed"))
    second = await stored(site, "site", "ahu-1")
    assert second["sysData"]["sysEntityVersion"] == 2
    assert second["entityName"] == "renamed"
    assert "note" not in second  # full-object update
    assert second["sysData"]["sysCreatedAt"] == first["sysData"]["sysCreatedAt"]
    assert second["sysData"]["sysTransactionId"] != first["sysData"]["sysTransactionId"]
    versions = await site.client.app[storage_key].get_versions("entities", "site", "ahu-1")
    assert [v["sysData"]["sysEntityVersion"] for v in versions] == [1, 2]
    assert versions[0]["note"] == "first"


async def test_an_entity_a_dead_writer_claimed_is_shown_by_get_and_deleted_by_delete(site):
    from erapi.keys import storage_key

    await site.entities("site", entity("template"))
    storage = site.client.app[storage_key]
    [written] = await storage.get_versions("entities", "site", "template")
    # what a writer killed between its claim and its publish leaves: version 1 in the history only
    await storage.claim_versions("entities", "site", [{**written, "id": "ahu-9", "entityName": "claimed"}])
    [found] = (await site.call("GET", "/apollo/er/entities/ahu-9", 200, collection="site"))["data"]
    assert found["entityName"] == "claimed"
    await storage.claim_versions("entities", "site", [{**written, "id": "ahu-8", "entityName": "claimed"}])
    await site.call("DELETE", "/apollo/er/entities/ahu-8", 200, collection="site")
    versions = await storage.get_versions("entities", "site", "ahu-8")
    assert [(v["sysData"]["sysEntityVersion"], v["isActive"]) for v in versions] == [(1, True), (2, False)]


async def test_echoing_the_derived_fields_unchanged_is_accepted(site):
    item = entity("ahu-1", brickEntityType="BRICK_0_4__Equipment", brickEntitySubType=AHU)
    body = await site.entities("site", item)
    assert ids(body, "success") == ["ahu-1"]


# ---- per-item failures: the rest of the batch proceeds ------------------------------------------------------------


async def failure_of(api, item, collection: str = "site") -> str:
    body = await api.entities(collection, [item, entity("ok-1")])
    assert body["status"]["message"] == "Total number of Entities Upserted:  1."
    assert ids(body, "success") == ["ok-1"]
    [failure] = body["data"]["responses"]["failure"]
    assert failure["id"] == item["id"]
    assert f"entityid={item['id']}&transactionid={body['transactionId']}" in failure["tracker"]
    logs = await api.status_logs(collection, {"entityid": item["id"], "transactionid": body["transactionId"]})
    assert [(r["state"], r["message"]) for r in logs["data"]] == [("Failed", failure["message"])]
    assert logs["data"][0]["stateHistory"][-1]["state"] == "Failed"
    return failure["message"]


async def test_unknown_entity_type_fails_the_item(site):
    message = await failure_of(site, entity("x-1", "BRICK_0_4__Toaster"))
    assert message == "Entity type BRICK_0_4__Toaster not found in the entity type catalog"
    await site.call("GET", "/apollo/er/entities/x-1", 404, collection="site")


async def test_changing_the_entity_type_fails_the_item_and_keeps_the_stored_one(site):
    await site.entities("site", entity("ahu-1", AHU))
    message = await failure_of(site, entity("ahu-1", SENSOR))
    assert message == "Restricted property entityType is not allowed to change"
    document = await stored(site, "site", "ahu-1")
    assert (document["entityType"], document["brickEntityType"]) == (AHU, "BRICK_0_4__Equipment")
    assert document["sysData"]["sysEntityVersion"] == 1


@pytest.mark.parametrize(
    "field, value",
    [("brickEntityType", "BRICK_0_4__Point"), ("brickEntitySubType", "BRICK_0_4__VAV")],
)
async def test_changing_a_derived_brick_field_fails_the_item(site, field, value):
    message = await failure_of(site, entity("ahu-1", AHU, **{field: value}))
    assert message == f"Restricted property {field} is not allowed to change"
    await site.call("GET", "/apollo/er/entities/ahu-1", 404, collection="site")


async def test_changing_a_derived_brick_field_of_a_stored_entity_fails_the_item(site):
    await site.entities("site", entity("ahu-1", AHU))
    message = await failure_of(site, entity("ahu-1", AHU, brickEntityType="BRICK_0_4__Location"))
    assert message == "Restricted property brickEntityType is not allowed to change"
    assert (await stored(site, "site", "ahu-1"))["sysData"]["sysEntityVersion"] == 1


async def test_duplicate_ids_fail_every_occurrence_after_the_first(site):
    items = [entity("e1", entityName="one"), entity("e2"), entity("e1", entityName="two"), entity("e1")]
    body = await site.entities("site", items)
    assert body["status"]["message"] == "Total number of Entities Upserted:  2."
    assert ids(body, "success") == ["e1", "e2"]
    assert ids(body, "failure") == ["e1", "e1"]
    assert {f["message"] for f in body["data"]["responses"]["failure"]} == {
        "Entity id e1 appears more than once in the request"
    }
    document = await stored(site, "site", "e1")
    assert document["entityName"] == "one"
    assert document["sysData"]["sysEntityVersion"] == 1
    logs = await site.status_logs("site", {"entityid": "e1"})
    assert [r["state"] for r in logs["data"]] == ["Completed", "Failed", "Failed"]


async def test_results_keep_request_order_within_each_list(site):
    items = [entity("b"), entity("bad-2", "Nope"), entity("a"), entity("bad-1", "Nope"), entity("c")]
    body = await site.entities("site", items)
    assert ids(body, "success") == ["b", "a", "c"]
    assert ids(body, "failure") == ["bad-2", "bad-1"]


# ---- request-level refusals: nothing is written -------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["id", "entityType"])
async def test_missing_required_field_is_400_with_its_json_pointer(site, missing):
    item = {k: v for k, v in entity("e1").items() if k != missing}
    body = await site.entities("site", [entity("ok-1"), item], expect=400)
    assert body["status"]["message"] == "The request body does not match its schema"
    assert body["errors"] == [{"path": "/1", "message": f'"{missing}" is a required property'}]
    await assert_nothing_written(site, "site", "ok-1")


@pytest.mark.parametrize("field", ["id", "entityType"])
async def test_empty_required_field_is_400_with_its_json_pointer(site, field):
    body = await site.entities("site", entity("e1", **{field: ""}), expect=400)
    assert body["status"]["message"] == "The request body does not match its schema"
    assert {e["path"] for e in body["errors"]} == {f"/0/{field}"}
    await assert_nothing_written(site, "site", "e1")


async def test_client_supplied_system_data_is_400(site):
    body = await site.entities("site", entity("e1", sysData={"sysEntityVersion": 7}), expect=400)
    assert body["errors"] == [{"path": "/0/sysData", "message": "sysData is set by the service and must not be sent"}]
    await assert_nothing_written(site, "site", "e1")


async def test_101_items_is_413_and_nothing_is_written(site):
    items = [entity(f"e{i}") for i in range(101)]
    body = await site.entities("site", items, expect=413)
    assert body["status"]["message"] == "A request may carry at most 100 items; this one has 101"
    await assert_nothing_written(site, "site", "e0")
    body = await site.entities("site", items[:100])
    assert body["status"]["message"] == "Total number of Entities Upserted:  100."


async def test_body_that_is_not_an_object_or_array_is_400(site):
    body = await site.call("POST", "/apollo/er/entities", 400, collection="site", data=b"42",
                           headers={"Content-Type": "application/json"})
    assert body["status"]["message"] == "The request body must be a JSON object or an array of objects"


async def test_read_only_scope_on_a_write_is_403(site):
    body = await site.as_("alice", "apollo_read").entities("site", entity("e1"), expect=403)
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    await assert_nothing_written(site, "site", "e1")


async def test_write_without_a_write_grant_is_403(site):
    await site.grant("site", "bob", ["read"])
    body = await site.as_("bob").entities("site", entity("e1"), expect=403)
    assert body["status"]["message"] == "ERCollection site is not registered or the caller has no write grant on it"
    await assert_nothing_written(site, "site", "e1")


async def test_unregistered_collection_is_403(site):
    body = await site.entities("elsewhere", entity("e1"), expect=403)
    assert body["status"]["message"] == (
        "ERCollection elsewhere is not registered or the caller has no write grant on it"
    )


# ---- GET one entity -----------------------------------------------------------------------------------------------


async def test_get_unknown_id_is_404(site):
    body = await site.call("GET", "/apollo/er/entities/ghost", 404, collection="site")
    assert body["status"]["message"] == "Entity ghost not found in ERCollection site"


async def test_get_an_id_that_lives_in_another_collection_is_404(site):
    await site.register("other")
    await site.entities("other", entity("ahu-1"))
    body = await site.call("GET", "/apollo/er/entities/ahu-1", 404, collection="site")
    assert body["status"]["message"] == "Entity ahu-1 not found in ERCollection site"
    assert (await stored(site, "other", "ahu-1"))["id"] == "ahu-1"


async def test_get_a_relationship_id_as_an_entity_is_404(site):
    await site.entities("site", [entity("a"), entity("b")])
    await site.relationships("site", {"id": "r1", "sourceEntityId": "a", "destinationEntityId": "b",
                                      "relationshipType": "BRICK_0_4__feeds_Equipment_Equipment"})
    await site.call("GET", "/apollo/er/entities/r1", 404, collection="site")


async def test_get_needs_a_read_grant(site):
    await site.entities("site", entity("ahu-1"))
    stranger = site.as_("mallory")
    body = await stranger.call("GET", "/apollo/er/entities/ahu-1", 403, collection="site")
    assert body["status"]["message"] == "ERCollection site is not registered or the caller has no read grant on it"
    await site.grant("site", "mallory", ["write"])
    await stranger.call("GET", "/apollo/er/entities/ahu-1", 403, collection="site")
    await site.grant("site", "mallory", ["read"])
    assert (await stored(stranger, "site", "ahu-1", system_data=False))["id"] == "ahu-1"


async def test_get_needs_the_read_scope(site):
    await site.entities("site", entity("ahu-1"))
    body = await site.as_("alice", "apollo_write").call("GET", "/apollo/er/entities/ahu-1", 403, collection="site")
    assert body["status"]["message"] == "The token lacks the scope apollo_read"


async def test_get_without_collection_header_is_400(site):
    body = await site.call("GET", "/apollo/er/entities/ahu-1", 400)
    assert body["status"]["message"] == "The ercollectionid header is required"


async def test_an_id_with_a_slash_is_readable_percent_encoded(site):
    await site.entities("site", entity("floor-3/ahu-1"))
    body = await site.call("GET", "/apollo/er/entities/floor-3%2Fahu-1", 200, collection="site")
    assert [d["id"] for d in body["data"]] == ["floor-3/ahu-1"]
