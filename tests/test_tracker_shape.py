"""The status tracker's answer, byte for byte: the keys of every record, their order and the type of every value,
for a synchronous record, the records of an async job (accepted, then applied) and delete records, on every
storage plugin. However the plugins store status records, this is what a client parses."""

from __future__ import annotations

import json
import time

import orjson
import pytest

from erapi.config import JobsConfig
from erapi.jobs import JobWorker, Services
from erapi.keys import acl_key, catalog_key, storage_key
from erapi.writes.status_records import item_record_id, item_record_ids, record_ids_of
from tests.api_fixtures import entity, relationship

ENTRY = {"timestamp": "str", "unixTimestamp": "int", "state": "str"}


def record_shape(subject: str, entries: int, job: bool = False) -> dict:
    """A status record's shape: ``subject`` the serviceData field that names the item, or None for a job."""
    service = {"erCollectionId": "str", "entityId": "NoneType", "relationshipId": "NoneType"}
    if subject:
        service[subject] = "str"
    shape = {"id": "str", "transactionId": "str", "correlationId": "str", "requestAction": "str",
             "requestObject": "str", "state": "str", "message": "str", "serviceData": service,
             "receivedTimestamp": "str", "stateHistory": [ENTRY] * entries}
    if job:
        shape["jobData"] = {"total": "int", "done": "int", "failed": "int", "pending": "int"}
    return shape


def shape(value):
    """Keys in the order they were sent, lists item by item, scalars by type."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def ordered_shape(value) -> list:
    """``shape`` with the key order made comparable (dict equality ignores order)."""
    if isinstance(value, dict):
        return [(key, ordered_shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [ordered_shape(item) for item in value]
    return value


async def tracker(api, params: dict) -> list[dict]:
    """The records of one tracker answer, after checking the whole answer's bytes and envelope."""
    response = await api.client.get("/apollo/status/logs", params=params,
                                    headers={**api.headers, "ercollectionid": "c1"})
    assert response.status == 200
    text = await response.read()
    body = json.loads(text)  # keeps the order of the keys as sent
    assert orjson.dumps(body) == text  # compact JSON, nothing else in it
    assert list(body) == ["status", "data", "paging"]
    assert body["status"] == {"message": "", "code": "OK"}
    assert ordered_shape(shape(body["paging"])) == [("totalCount", "int"), ("continuationToken", "NoneType")]
    return body["data"]


def assert_records(records: list[dict], expected: list[tuple[dict, dict]]) -> None:
    """Each record has the shape and the fixed values expected of it, in order."""
    assert len(records) == len(expected)
    for record, (wanted_shape, values) in zip(records, expected):
        assert ordered_shape(shape(record)) == ordered_shape(wanted_shape)
        assert {key: record[key] for key in values} == values
        history = record["stateHistory"]
        assert record["receivedTimestamp"] == history[0]["timestamp"]
        assert [entry["state"] for entry in history][-1] == record["state"]


@pytest.fixture
async def site(app_factory):
    api = await app_factory(jobs={"workers": 0})
    await api.register("c1")
    await api.entities("c1", [entity("a"), entity("b")])
    return api


async def test_a_synchronous_record(site):
    body = await site.relationships("c1", [relationship("r1", "a", "b"), relationship("r2", "a", "missing")],
                                    headers={"X-Correlation-Id": "k-7"})
    for item in body["data"]["responses"]["success"] + body["data"]["responses"]["failure"]:
        path = "/" + item["tracker"].split("://", 1)[1].split("/", 1)[1]
        assert path.startswith("/apollo/status/logs?relationshipid=")
    common = {"transactionId": body["transactionId"], "correlationId": "k-7", "requestAction": "Upsert",
              "requestObject": "Relationship"}
    records = await tracker(site, {"transactionid": body["transactionId"]})
    assert_records(records, [
        (record_shape("relationshipId", 3), {**common, "state": "Completed", "id": f"{body['transactionId']}.00000",
                                             "message": "Relationship upserted successfully",
                                             "serviceData": {"erCollectionId": "c1", "entityId": None,
                                                             "relationshipId": "r1"}}),
        (record_shape("relationshipId", 3), {**common, "state": "Failed", "id": f"{body['transactionId']}.00001",
                                             "message": "Destination entity missing not found in ERCollection c1",
                                             "serviceData": {"erCollectionId": "c1", "entityId": None,
                                                             "relationshipId": "r2"}}),
    ])
    assert [entry["state"] for entry in records[0]["stateHistory"]] == ["Requested", "Processing", "Completed"]
    one = await tracker(site, {"relationshipid": "r2", "transactionid": body["transactionId"]})
    assert one == records[1:]


async def test_the_records_of_an_async_job_accepted_then_applied(site):
    body = await site.call("POST", "/apollo/er/entities", 202, collection="c1", headers={"async": "true"},
                           json_body=[entity("n1"), entity("n1"), entity("n2", "BRICK_0_4__Nope")])
    transaction = body["transactionId"]
    common = {"transactionId": transaction, "correlationId": transaction, "requestAction": "Upsert"}
    job = {**common, "id": transaction, "requestObject": "Job",
           "serviceData": {"erCollectionId": "c1", "entityId": None, "relationshipId": None}}

    def item(index: int, entity_id: str) -> dict:
        return {**common, "id": f"{transaction}.{index:05d}", "requestObject": "Entity",
                "serviceData": {"erCollectionId": "c1", "entityId": entity_id, "relationshipId": None}}

    duplicate = {"state": "Failed", "message": "Entity id n1 appears more than once in the request"}
    accepted = await tracker(site, {"transactionid": transaction})
    assert_records(accepted, [
        (record_shape("", 1, job=True), {**job, "state": "Requested", "message": "Job of Entity upserts accepted",
                                         "jobData": {"total": 3, "done": 0, "failed": 1, "pending": 2}}),
        (record_shape("entityId", 1), {**item(0, "n1"), "state": "Requested", "message": "Waiting to be processed"}),
        (record_shape("entityId", 2), {**item(1, "n1"), **duplicate}),
        (record_shape("entityId", 1), {**item(2, "n2"), "state": "Requested", "message": "Waiting to be processed"}),
    ])

    app = site.client.app
    services = Services(storage=app[storage_key], catalog=app[catalog_key], acl=app[acl_key])
    assert await JobWorker(services, JobsConfig(), "w1", clock=time.time).run_once() is True
    applied = await tracker(site, {"transactionid": transaction})
    assert_records(applied, [
        (record_shape("", 3, job=True), {**job, "state": "Completed",
                                         "jobData": {"total": 3, "done": 1, "failed": 2, "pending": 0}}),
        (record_shape("entityId", 3), {**item(0, "n1"), "state": "Completed",
                                       "message": "Entity upserted successfully"}),
        (record_shape("entityId", 2), {**item(1, "n1"), **duplicate}),
        (record_shape("entityId", 3), {**item(2, "n2"), "state": "Failed"}),
    ])
    assert [entry["state"] for entry in applied[1]["stateHistory"]] == ["Requested", "Processing", "Completed"]
    assert await tracker(site, {"entityid": "n2", "transactionid": transaction}) == applied[3:]


async def test_delete_records(site):
    await site.relationships("c1", relationship("r1", "a", "b"))
    body = await site.call("DELETE", "/apollo/er/entities/a", 200, collection="c1", params={"cascade": "true"})
    transaction = body["transactionId"]
    common = {"transactionId": transaction, "correlationId": transaction, "requestAction": "Delete",
              "state": "Completed"}
    records = await tracker(site, {"transactionid": transaction})
    assert_records(records, [
        (record_shape("entityId", 3), {**common, "id": f"{transaction}.00000", "requestObject": "Entity",
                                       "message": "Entity deleted",
                                       "serviceData": {"erCollectionId": "c1", "entityId": "a",
                                                       "relationshipId": None}}),
        (record_shape("relationshipId", 3), {**common, "id": f"{transaction}.00001", "requestObject": "Relationship",
                                             "message": "Relationship deleted with entity a (cascade)",
                                             "serviceData": {"erCollectionId": "c1", "entityId": None,
                                                             "relationshipId": "r1"}}),
    ])
    for item in body["data"]["deleted"]:
        path = "/" + item["tracker"].split("://", 1)[1].split("/", 1)[1]
        found = await site.call("GET", path, 200, collection="c1", schema="status-logs")
        subject = {(record["serviceData"]["entityId"] or record["serviceData"]["relationshipId"]): record
                   for record in records}
        assert found["data"] == [subject[item["id"]]]


@pytest.mark.parametrize("indexes", [[0, 1, 2], [98, 99, 100, 101], [3, 7, 4500], [9_998, 9_999, 10_000, 12_345], []])
def test_record_ids_of_items_are_their_item_record_ids(indexes):
    # made from suffixes kept once, up to a job's worth: the same ids as formatting each, in and beyond that range
    assert record_ids_of("t-1", indexes) == [item_record_id("t-1", index) for index in indexes]
    if indexes:
        assert item_record_ids("t-1", indexes[0], 3) == [item_record_id("t-1", indexes[0] + n) for n in range(3)]
