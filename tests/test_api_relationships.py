"""POST /apollo/er/relationships: the contract's example, every request-level code, every per-item failure."""

from __future__ import annotations

import asyncio
import gzip
import time

import orjson
import pytest

from tests.api_fixtures import RELATIONSHIP_TYPE, Api, entity, make_config, relationship, token

SOURCE = "ac4d999e-3798-11e8-a1af-c8e0eb18b031"
DESTINATION = "ac4d8cd8-3798-11e8-a527-c8e0eb18b031"
RELATIONSHIP_ID = "5091e806-39b1-11e8-ae2c-c8e0eb18b031"
CONTRACT_EXAMPLE = {
    "id": RELATIONSHIP_ID,
    "sourceEntityId": SOURCE,
    "destinationEntityId": DESTINATION,
    "relationshipName": "test",
    "relationshipType": "BRICK_0_4__isFedBy_Equipment_Equipment",
    "sourceERCollectionId": "august_14_81",
    "destinationERCollectionId": "august_14_8",
}


def cross(relationship_id: str = RELATIONSHIP_ID, **extra) -> dict:
    return {**CONTRACT_EXAMPLE, "id": relationship_id, **extra}


async def assert_nothing_written(api, collection: str, relationship_id: str = RELATIONSHIP_ID) -> None:
    await api.relationship(collection, relationship_id, expect=404)
    await api.status_logs(collection, {"relationshipid": relationship_id}, expect=404)


async def test_contract_example_gives_207_and_a_completed_tracker(building):
    body = await building.relationships("august_14_81", CONTRACT_EXAMPLE, headers={"async": "false"})
    assert body["status"] == {"message": "Total number of Relationships Upserted:  1.", "code": "207"}
    assert body["_headers"]["X-Transaction-Id"] == body["transactionId"]
    [success] = body["data"]["responses"]["success"]
    assert body["data"]["responses"]["failure"] == []
    assert success["id"] == RELATIONSHIP_ID
    assert success["message"] == "Relationship upserted successfully"
    assert success["tracker"].endswith(
        f"/apollo/status/logs?relationshipid={RELATIONSHIP_ID}&transactionid={body['transactionId']}"
    )
    path = success["tracker"].split("://", 1)[1].split("/", 1)[1]
    logs = await building.call("GET", "/" + path, 200, collection="august_14_81", schema="status-logs")
    [record] = logs["data"]
    assert record["state"] == "Completed"
    assert record["stateHistory"][-1]["state"] == "Completed"
    assert [s["state"] for s in record["stateHistory"]] == ["Requested", "Processing", "Completed"]
    assert record["serviceData"] == {"erCollectionId": "august_14_81", "entityId": None,
                                     "relationshipId": RELATIONSHIP_ID}
    assert record["requestObject"] == "Relationship" and record["requestAction"] == "Upsert"


async def test_stored_relationship_carries_derived_fields_and_system_data_on_request(building):
    await building.relationships("august_14_81", CONTRACT_EXAMPLE)
    plain = await building.relationship("august_14_81", RELATIONSHIP_ID)
    [stored] = plain["data"]
    assert stored["brickRelationshipName"] == "isFedBy"
    assert stored["brickRelationshipType"] == "BRICK_0_4__isFedBy"
    assert stored["isActive"] is True
    assert "sysData" not in stored
    full = await building.relationship("august_14_81", RELATIONSHIP_ID, params={"includeSystemData": "TRUE"})
    assert full["data"][0]["sysData"]["sysRelationshipVersion"] == 1
    assert full["data"][0]["sysData"]["sysUpdatedBy"] == "alice"


async def test_collections_default_to_the_header(building):
    await building.entities("august_14_81", entity("ahu-3"))
    body = await building.relationships("august_14_81", relationship("r-local", SOURCE, "ahu-3"))
    assert len(body["data"]["responses"]["success"]) == 1
    [stored] = (await building.relationship("august_14_81", "r-local"))["data"]
    assert stored["sourceERCollectionId"] == "august_14_81"
    assert stored["destinationERCollectionId"] == "august_14_81"


# ---- request-level refusals: nothing is written ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "The request body is not valid JSON"),
        (b"42", "The request body must be a JSON object or an array of objects"),
        (b'"text"', "The request body must be a JSON object or an array of objects"),
        (b"[]", "The request body does not match its schema"),
    ],
)
async def test_body_that_is_not_an_object_or_array_is_400(building, raw, message):
    body = await building.call("POST", "/apollo/er/relationships", 400, collection="august_14_81", data=raw,
                               headers={"Content-Type": "application/json"})
    assert body["status"]["message"].startswith(message)


async def test_schema_violations_are_all_listed_with_json_pointers(building):
    bad = [cross(), {**cross("r2"), "relationshipType": ""}, {k: v for k, v in cross("r3").items() if k != "id"}]
    body = await building.relationships("august_14_81", bad, expect=400)
    assert body["status"]["message"] == "The request body does not match its schema"
    paths = {error["path"] for error in body["errors"]}
    assert {"/1/relationshipType", "/2"} <= paths
    assert any("id" in e["message"] and e["path"] == "/2" for e in body["errors"])
    await assert_nothing_written(building, "august_14_81")


async def test_missing_required_field_is_400_with_its_path(building):
    item = {k: v for k, v in cross().items() if k != "relationshipType"}
    body = await building.relationships("august_14_81", item, expect=400)
    assert body["errors"] == [{"path": "/0", "message": '"relationshipType" is a required property'}]


async def test_client_supplied_system_data_is_refused(building):
    body = await building.relationships("august_14_81", cross(sysData={"sysRelationshipVersion": 99}), expect=400)
    assert body["errors"] == [{"path": "/0/sysData", "message": "sysData is set by the service and must not be sent"}]
    await assert_nothing_written(building, "august_14_81")


async def test_client_supplied_is_active_is_overwritten(building):
    await building.relationships("august_14_81", cross(isActive=False))
    [stored] = (await building.relationship("august_14_81", RELATIONSHIP_ID))["data"]
    assert stored["isActive"] is True


@pytest.mark.parametrize("value", ["yes", "1", ""])
async def test_async_header_must_be_true_or_false(building, value):
    body = await building.relationships("august_14_81", cross(), expect=400, headers={"async": value})
    assert body["status"]["message"] == "The async header must be true or false"
    await assert_nothing_written(building, "august_14_81")


@pytest.mark.parametrize("value", ["FALSE", "False", "false"])
async def test_async_false_is_case_insensitive(building, value):
    await building.relationships("august_14_81", cross(), headers={"async": value})


async def test_missing_collection_header_is_400(building):
    body = await building.call("POST", "/apollo/er/relationships", 400, json_body=cross())
    assert body["status"]["message"] == "The ercollectionid header is required"
    await assert_nothing_written(building, "august_14_81")


async def test_missing_token_is_401_with_www_authenticate(building):
    response = await building.client.post("/apollo/er/relationships", json=cross(),
                                          headers={"ercollectionid": "august_14_81"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["status"] == {"message": "A bearer token is required", "code": "401"}
    await assert_nothing_written(building, "august_14_81")


@pytest.mark.parametrize("bad_token", ["garbage", "a.b.c", token("alice", ttl=60, now=time.time() - 3600)])
async def test_invalid_tokens_are_401(building, bad_token):
    response = await building.client.post("/apollo/er/relationships", json=cross(), headers={
        "ercollectionid": "august_14_81", "Authorization": f"Bearer {bad_token}"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await assert_nothing_written(building, "august_14_81")


async def test_read_only_scope_on_a_write_is_403(building):
    reader = building.as_("alice", "apollo_read")
    body = await reader.relationships("august_14_81", cross(), expect=403)
    assert body["status"]["message"] == "The token lacks the scope apollo_write"
    await assert_nothing_written(building, "august_14_81")


async def test_unregistered_collection_is_403(building):
    body = await building.relationships("nowhere", cross(sourceERCollectionId="nowhere"), expect=403)
    assert body["status"]["message"] == "ERCollection nowhere is not registered or the caller has no write grant on it"


async def test_collection_without_grant_is_403(building):
    body = await building.as_("mallory").relationships("august_14_81", cross(), expect=403)
    assert body["status"]["message"] == (
        "ERCollection august_14_81 is not registered or the caller has no write grant on it"
    )
    await assert_nothing_written(building, "august_14_81")


async def test_101_items_is_413_and_100_items_is_207(building):
    items = [relationship(f"r{i}", SOURCE, SOURCE, relationship_type="BRICK_0_4__hasPart_Equipment_Equipment")
             for i in range(101)]
    body = await building.relationships("august_14_81", items, expect=413)
    assert body["status"]["message"] == "A request may carry at most 100 items; this one has 101"
    await assert_nothing_written(building, "august_14_81", "r0")
    body = await building.relationships("august_14_81", items[:100])
    assert body["status"]["message"] == "Total number of Relationships Upserted:  100."
    assert [s["id"] for s in body["data"]["responses"]["success"]] == [f"r{i}" for i in range(100)]


async def test_body_over_the_byte_limit_is_413(app_factory):
    api = await app_factory(server={"max_body_bytes": 2048})
    await api.register("c1")
    big = orjson.dumps([cross(relationshipName="x" * 1000), cross("r2", relationshipName="y" * 1000)])
    body = await api.call("POST", "/apollo/er/relationships", 413, collection="c1", data=big,
                          headers={"Content-Type": "application/json"})
    assert body["status"]["message"] == "The request body exceeds the limit of 2048 bytes"


async def test_streamed_body_over_the_limit_is_413_without_buffering_it_whole(app_factory):
    api = await app_factory(server={"max_body_bytes": 4096})
    await api.register("c1")
    sent = 0

    async def endless_chunks():
        # 1 MiB offered in chunks, no Content-Length: the server must stop reading after about 4 KiB
        nonlocal sent
        for _ in range(256):
            sent += 4096
            yield b"[" + b" " * 4094 + b"]"

    response = await api.client.post("/apollo/er/relationships", data=endless_chunks(), headers={
        **api.headers, "ercollectionid": "c1", "Content-Type": "application/json"})
    assert response.status == 413
    assert (await response.json())["status"]["code"] == "413"


async def test_gzip_body_inflating_past_the_limit_is_413(app_factory):
    api = await app_factory(server={"max_body_bytes": 4096})
    await api.register("c1")
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    assert len(bomb) < 4096
    response = await api.client.post("/apollo/er/relationships", data=bomb, headers={
        **api.headers, "ercollectionid": "c1", "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status == 413


async def test_wrong_content_type_is_415(building):
    body = await building.call("POST", "/apollo/er/relationships", 415, collection="august_14_81",
                               data=orjson.dumps(cross()), headers={"Content-Type": "text/plain"})
    assert body["status"]["message"] == "Content-Type must be application/json"
    await assert_nothing_written(building, "august_14_81")


# ---- per-item failures: the rest of the batch proceeds --------------------------------------------------------


async def failure_of(api, item, collection="august_14_81") -> str:
    body = await api.relationships(collection, [item, cross("r-ok")])
    responses = body["data"]["responses"]
    assert [s["id"] for s in responses["success"]] == ["r-ok"]
    [failure] = responses["failure"]
    assert failure["id"] == item["id"]
    assert body["status"]["message"] == "Total number of Relationships Upserted:  1."
    logs = await api.status_logs(collection, {"relationshipid": item["id"]})
    assert [(r["state"], r["message"]) for r in logs["data"]] == [("Failed", failure["message"])]
    await api.relationship(collection, item["id"], expect=404)
    return failure["message"]


async def test_unknown_relationship_type_fails_the_item(building):
    message = await failure_of(building, cross("r1", relationshipType="BRICK_0_4__likes_Equipment_Equipment"))
    assert message == "Relationship type BRICK_0_4__likes_Equipment_Equipment not found in the relationship type catalog"


async def test_source_collection_differing_from_header_fails_the_item(building):
    message = await failure_of(building, cross("r1", sourceERCollectionId="august_14_8"))
    assert message == "sourceERCollectionId august_14_8 does not match the ercollectionid header august_14_81"


async def test_unregistered_destination_collection_fails_the_item(building):
    message = await failure_of(building, cross("r1", destinationERCollectionId="ghost"))
    assert message == "Destination ERCollection ghost does not exist or is not readable by the caller"


async def test_missing_source_entity_fails_the_item(building):
    message = await failure_of(building, cross("r1", sourceEntityId="nope"))
    assert message == "Source entity nope not found in ERCollection august_14_81"


async def test_missing_destination_entity_fails_the_item(building):
    message = await failure_of(building, cross("r1", destinationEntityId=SOURCE))
    assert message == f"Destination entity {SOURCE} not found in ERCollection august_14_8"


async def test_entity_of_the_wrong_class_fails_the_item(building):
    await building.entities("august_14_8", entity("sensor-1", "BRICK_0_4__Temperature_Sensor"))
    message = await failure_of(building, cross("r1", destinationEntityId="sensor-1"))
    assert message == (
        "Destination entity sensor-1 of type BRICK_0_4__Temperature_Sensor is not a BRICK_0_4__Equipment "
        f"as relationship type {RELATIONSHIP_TYPE} requires"
    )


async def test_subclasses_satisfy_the_relationship_type(building):
    await building.entities("august_14_81", [entity("zone-1", "BRICK_0_4__HVAC_Zone")])
    item = relationship("r-zone", SOURCE, "zone-1", relationship_type="BRICK_0_4__feeds_Equipment_Location")
    body = await building.relationships("august_14_81", item)
    assert [s["id"] for s in body["data"]["responses"]["success"]] == ["r-zone"]


async def test_changing_the_relationship_type_fails_the_item(building):
    await building.relationships("august_14_81", cross("r1"))
    changed = cross("r1", relationshipType="BRICK_0_4__hasPart_Equipment_Equipment")
    body = await building.relationships("august_14_81", [changed, cross("r-ok")])
    [failure] = body["data"]["responses"]["failure"]
    assert failure["message"] == "Restricted property relationshipType is not allowed to change"
    [stored] = (await building.relationship("august_14_81", "r1", params={"includeSystemData": "true"}))["data"]
    assert stored["relationshipType"] == RELATIONSHIP_TYPE
    assert stored["sysData"]["sysRelationshipVersion"] == 1


async def test_changing_a_derived_brick_field_fails_the_item(building):
    message = await failure_of(building, cross("r1", brickRelationshipName="feeds"))
    assert message == "Restricted property brickRelationshipName is not allowed to change"


async def test_echoing_derived_fields_unchanged_is_accepted(building):
    item = cross(brickRelationshipName="isFedBy", brickRelationshipType="BRICK_0_4__isFedBy", isActive=True)
    body = await building.relationships("august_14_81", item)
    assert len(body["data"]["responses"]["success"]) == 1


async def test_duplicate_ids_fail_every_occurrence_after_the_first(building):
    body = await building.relationships("august_14_81", [cross("r1"), cross("r2"), cross("r1"), cross("r1")])
    responses = body["data"]["responses"]
    assert [s["id"] for s in responses["success"]] == ["r1", "r2"]
    assert [f["id"] for f in responses["failure"]] == ["r1", "r1"]
    assert {f["message"] for f in responses["failure"]} == {"Relationship id r1 appears more than once in the request"}
    [stored] = (await building.relationship("august_14_81", "r1", params={"includeSystemData": "true"}))["data"]
    assert stored["sysData"]["sysRelationshipVersion"] == 1


async def test_results_keep_request_order_within_each_list(building):
    items = [cross("r3"), cross("bad1", sourceEntityId="x"), cross("r1"), cross("bad0", sourceEntityId="y"), cross("r2")]
    body = await building.relationships("august_14_81", items)
    assert [s["id"] for s in body["data"]["responses"]["success"]] == ["r3", "r1", "r2"]
    assert [f["id"] for f in body["data"]["responses"]["failure"]] == ["bad1", "bad0"]


# ---- versions ----------------------------------------------------------------------------------------------------


async def test_full_object_update_makes_version_2_and_keeps_version_1(building, storage_name):
    await building.relationships("august_14_81", cross(relationshipName="first", note="kept?"))
    await building.relationships("august_14_81", cross(relationshipName="second"))
    [stored] = (await building.relationship("august_14_81", RELATIONSHIP_ID, params={"includeSystemData": "true"}))["data"]
    assert stored["relationshipName"] == "second"
    assert "note" not in stored  # full-object update: properties not sent are gone
    assert stored["sysData"]["sysRelationshipVersion"] == 2


async def test_twenty_concurrent_writers_get_versions_2_to_21(building):
    from erapi.keys import storage_key

    await building.relationships("august_14_81", cross())
    writers = [building.relationships("august_14_81", cross(relationshipName=f"writer-{n}")) for n in range(20)]
    results = await asyncio.gather(*writers)
    assert all(len(r["data"]["responses"]["success"]) == 1 for r in results)
    storage = building.client.app[storage_key]
    versions = await storage.get_versions("relationships", "august_14_81", RELATIONSHIP_ID)
    assert [v["sysData"]["sysRelationshipVersion"] for v in versions] == list(range(1, 22))
    assert sorted(v["relationshipName"] for v in versions[1:]) == sorted(f"writer-{n}" for n in range(20))
    [current] = (await building.relationship("august_14_81", RELATIONSHIP_ID, params={"includeSystemData": "true"}))["data"]
    assert current["sysData"]["sysRelationshipVersion"] == 21
    assert current == {k: v for k, v in versions[-1].items()}


# ---- a version claimed but never published (the writer died, or storage failed in between) ---------------------


async def claimed_never_published(api, relationship_id: str) -> dict:
    """Leave ``relationship_id`` as a writer killed between its claim and its publish leaves it: version 1 in the
    history, nothing in the current view, no status record. Returns that version."""
    from erapi.keys import storage_key

    template = await api.relationships("august_14_81", cross("template"))
    assert template["data"]["responses"]["success"]
    storage = api.client.app[storage_key]
    [written] = await storage.get_versions("relationships", "august_14_81", "template")
    claimed = {**written, "id": relationship_id, "relationshipName": "claimed by a writer that died"}
    claim = await storage.claim_versions("relationships", "august_14_81", [claimed])
    assert claim.claimed == [relationship_id]
    return claimed


def version_numbers(body: dict) -> list[int]:
    return [version["sysData"]["sysRelationshipVersion"] for version in body["data"]]


@pytest.mark.parametrize("first_read", ["get", "versions"])
async def test_reads_roll_a_claimed_version_forward_so_get_and_versions_agree(building, first_read):
    claimed = await claimed_never_published(building, "r-claimed")
    versions_path = "/apollo/er/relationships/r-claimed/versions"
    if first_read == "versions":
        body = await building.call("GET", versions_path, 200, collection="august_14_81", schema="relationship-list")
        assert version_numbers(body) == [1]
    [found] = (await building.relationship("august_14_81", "r-claimed", params={"includeSystemData": "true"}))["data"]
    assert found == claimed
    body = await building.call("GET", versions_path, 200, collection="august_14_81", schema="relationship-list")
    assert version_numbers(body) == [1]
    # published now: the lists see it too
    listed = await building.call("GET", "/apollo/er/relationships", 200, collection="august_14_81",
                                 schema="relationship-list")
    assert "r-claimed" in [item["id"] for item in listed["data"]]


async def test_versions_publishes_a_claim_newer_than_the_current_view_before_listing_it(building):
    from erapi.keys import storage_key

    await building.relationships("august_14_81", cross(relationshipName="published"))
    storage = building.client.app[storage_key]
    [first] = await storage.get_versions("relationships", "august_14_81", RELATIONSHIP_ID)
    second = {**first, "relationshipName": "claimed", "sysData": {**first["sysData"], "sysRelationshipVersion": 2}}
    await storage.claim_versions("relationships", "august_14_81", [second])
    body = await building.call("GET", f"/apollo/er/relationships/{RELATIONSHIP_ID}/versions", 200,
                               collection="august_14_81", schema="relationship-list")
    assert version_numbers(body) == [1, 2]
    [found] = (await building.relationship("august_14_81", RELATIONSHIP_ID))["data"]
    assert found["relationshipName"] == "claimed"


async def test_the_next_write_publishes_a_claimed_version_then_writes_the_next(building):
    await claimed_never_published(building, "r-claimed")
    body = await building.relationships("august_14_81", cross("r-claimed", relationshipName="retried"))
    assert [item["id"] for item in body["data"]["responses"]["success"]] == ["r-claimed"]
    versions = await building.call("GET", "/apollo/er/relationships/r-claimed/versions", 200,
                                   collection="august_14_81", schema="relationship-list")
    assert version_numbers(versions) == [1, 2]
    assert [v["relationshipName"] for v in versions["data"]] == ["claimed by a writer that died", "retried"]
    [found] = (await building.relationship("august_14_81", "r-claimed"))["data"]
    assert found["relationshipName"] == "retried"


async def test_a_delete_finds_a_claimed_version_a_read_would_show(building):
    await claimed_never_published(building, "r-claimed")
    await building.call("DELETE", "/apollo/er/relationships/r-claimed", 200, collection="august_14_81")
    await building.relationship("august_14_81", "r-claimed", expect=404)
    versions = await building.call("GET", "/apollo/er/relationships/r-claimed/versions", 200,
                                   collection="august_14_81", schema="relationship-list")
    assert [v["isActive"] for v in versions["data"]] == [True, False]


async def test_concurrent_writers_after_a_dead_writers_claim_get_versions_2_to_11(building):
    await claimed_never_published(building, "r-claimed")
    writers = [building.relationships("august_14_81", cross("r-claimed", relationshipName=f"writer-{n}"))
               for n in range(10)]
    assert all(len(r["data"]["responses"]["success"]) == 1 for r in await asyncio.gather(*writers))
    versions = await building.call("GET", "/apollo/er/relationships/r-claimed/versions", 200,
                                   collection="august_14_81", schema="relationship-list")
    assert version_numbers(versions) == list(range(1, 12))
    assert sorted(v["relationshipName"] for v in versions["data"][1:]) == sorted(f"writer-{n}" for n in range(10))
    [current] = (await building.relationship("august_14_81", "r-claimed"))["data"]
    assert current["relationshipName"] == versions["data"][-1]["relationshipName"]


class PublishFails:
    """The app's storage, but publishing fails (a 503) while ``failing``: the storage lost between a claim and
    its publish."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.failing = True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def put_current(self, *arguments):
        self._fail_while_failing()
        return await self.inner.put_current(*arguments)

    async def publish(self, *arguments):  # the write path's publish: its change record, then put_current
        self._fail_while_failing()
        return await self.inner.publish(*arguments)

    def _fail_while_failing(self) -> None:
        from storage_plugins.base import StorageError

        if self.failing:
            raise StorageError("the storage went away between claim and publish")


async def test_after_a_503_between_claim_and_publish_a_retry_writes_version_2(aiohttp_client, storage_name,
                                                                              storage_settings):
    from erapi.app import create_app
    from erapi.keys import storage_key

    async def publish_fails(app):
        app[storage_key] = PublishFails(app[storage_key])
        yield

    app = create_app(make_config(storage_name, storage_settings))
    app.cleanup_ctx.append(publish_fails)
    api = Api(await aiohttp_client(app))
    proxy = app[storage_key]
    proxy.failing = False
    await api.register("august_14_81")
    await api.register("august_14_8")
    await api.entities("august_14_81", entity(SOURCE))
    await api.entities("august_14_8", entity(DESTINATION))
    proxy.failing = True
    await api.relationships("august_14_81", cross(relationshipName="answered 503"), expect=503)
    proxy.failing = False
    [found] = (await api.relationship("august_14_81", RELATIONSHIP_ID))["data"]  # rolled forward by the read
    assert found["relationshipName"] == "answered 503"
    body = await api.relationships("august_14_81", cross(relationshipName="retried"))
    assert body["data"]["responses"]["success"]
    versions = await api.call("GET", f"/apollo/er/relationships/{RELATIONSHIP_ID}/versions", 200,
                              collection="august_14_81", schema="relationship-list")
    assert version_numbers(versions) == [1, 2]


# ---- cross-collection rights: owner, reader, stranger, in both settings -----------------------------------------


@pytest.mark.parametrize("destination_access", ["read", "write"])
async def test_cross_collection_rights(app_factory, destination_access):
    owner = await app_factory(acl={"cache_ttl_seconds": 0, "destination_access": destination_access})
    await owner.register("source")
    await owner.register("target")
    await owner.entities("target", entity(DESTINATION))
    reader, stranger = owner.as_("bob"), owner.as_("carol")
    # bob and carol each own a source collection holding an AHU; bob may read target, carol may not
    for who in (reader, stranger):
        await who.register(f"src-{who.subject}")
        await who.entities(f"src-{who.subject}", entity(SOURCE))
    await owner.grant("target", "bob", ["read"])

    def item(collection):
        return relationship("r1", SOURCE, DESTINATION, sourceERCollectionId=collection,
                            destinationERCollectionId="target")

    needed = "readable" if destination_access == "read" else "writable"
    denied = f"Destination ERCollection target does not exist or is not {needed} by the caller"

    await owner.entities("source", entity(SOURCE))
    body = await owner.relationships("source", item("source"))
    assert len(body["data"]["responses"]["success"]) == 1

    body = await reader.relationships("src-bob", item("src-bob"))
    if destination_access == "read":
        assert len(body["data"]["responses"]["success"]) == 1
    else:
        assert body["data"]["responses"]["failure"][0]["message"] == denied

    body = await stranger.relationships("src-carol", item("src-carol"))
    assert body["data"]["responses"]["failure"][0]["message"] == denied

    # the stranger cannot write into the owner's collection at all
    await stranger.relationships("source", item("source"), expect=403)
    # once granted write, bob passes in both settings
    await owner.grant("target", "bob", ["read", "write"])
    body = await reader.relationships("src-bob", item("src-bob"))
    assert len(body["data"]["responses"]["success"]) == 1
