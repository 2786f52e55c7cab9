"""Hostile input, case by case: the exact status, the error envelope, and nothing written.

"Nothing written" is checked through the storage interface itself (so on every plugin): the status
records and ACL records of the collections involved and the documents the request named are exactly as
before the request.
"""

from __future__ import annotations

import gzip
import io
import zlib

import orjson
import pytest

from erapi.keys import storage_key
from erapi.routes import OPERATIONS
from storage_plugins.base import LogQuery, StorageError
from tests.api_fixtures import entity, relationship, response_schema, token

import jsonschema

COLLECTION = "site"
SOURCE, DESTINATION = "ahu-1", "ahu-2"
RELATIONSHIP_TYPE = "BRICK_0_4__isFedBy_Equipment_Equipment"


@pytest.fixture
async def site(app_factory):
    """alice owns 'site' with two AHUs; the server's limits are small so that crossing them is cheap."""
    api = await app_factory(server={"max_body_bytes": 64 * 1024, "max_header_bytes": 4096})
    await api.register(COLLECTION)
    await api.entities(COLLECTION, [entity(SOURCE), entity(DESTINATION)])
    return api


def rel(relationship_id: str = "r1", **extra) -> dict:
    return relationship(relationship_id, SOURCE, DESTINATION, **extra)


async def snapshot(api, ids=("r1", "e1"), collections=(COLLECTION,)) -> dict:
    storage = api.client.app[storage_key]
    state = {}
    for collection in collections:
        state[collection] = (
            await storage.count_logs(LogQuery(collection_id=collection)),
            await storage.get_acl(collection),
            await storage.get_current("relationships", collection, list(ids)),
            await storage.get_current("entities", collection, list(ids)),
        )
    return state


async def refused(api, method: str, path: str, expect: int, message: str | None = None, *,
                  headers: dict | None = None, data=None, params=None, collection: str | None = COLLECTION,
                  ids=("r1", "e1")) -> dict:
    """Send the request; assert the status, the error envelope, the message and that nothing was written."""
    before = await snapshot(api, ids)
    all_headers = {**api.headers, **({"ercollectionid": collection} if collection else {}), **(headers or {})}
    if isinstance(data, (dict, list)):
        data = orjson.dumps(data)
    if data is not None:
        all_headers.setdefault("Content-Type", "application/json")
    if isinstance(data, bytes):
        data = io.BytesIO(data)
    response = await api.client.request(method, path, headers=all_headers, data=data, params=params)
    assert response.status == expect, await response.text()
    body = await response.json()
    jsonschema.validate(body, response_schema("error"))
    assert body["status"]["code"] == str(expect)
    if message is not None:
        assert body["status"]["message"] == message
    assert response.headers["Cache-Control"] == "no-store"
    assert await snapshot(api, ids) == before, "the refused request changed the storage"
    body["_headers"] = response.headers
    return body


# ---- bodies over the byte limit -------------------------------------------------------------------------------------

LIMIT_MESSAGE = "The request body exceeds the limit of 65536 bytes"


async def test_body_over_the_byte_limit_is_413(site):
    body = orjson.dumps([rel(f"r{i}", relationshipName="x" * 1000) for i in range(70)])
    assert len(body) > 64 * 1024
    await refused(site, "POST", "/apollo/er/relationships", 413, LIMIT_MESSAGE, data=body)


async def test_body_at_the_byte_limit_is_read(site):
    item = rel("r1", relationshipName="")
    padding = 64 * 1024 - len(orjson.dumps([item]))
    body = orjson.dumps([item])[:-1] + b" " * padding + b"]"
    assert len(body) == 64 * 1024
    response = await site.client.post("/apollo/er/relationships", data=io.BytesIO(body), headers={
        **site.headers, "ercollectionid": COLLECTION, "Content-Type": "application/json"})
    assert response.status == 207


async def test_chunked_body_without_length_over_the_limit_is_413(site):
    async def chunks():
        yield b"["
        for _ in range(100):
            yield b" " * 1024
        yield b"]"

    await refused(site, "POST", "/apollo/er/relationships", 413, LIMIT_MESSAGE, data=chunks(),
                  headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
async def test_compressed_body_inflating_past_the_limit_is_413(site, encoding, compress):
    bomb = compress(orjson.dumps([rel("r1")])[:-1] + b" " * 10_000_000 + b"]")
    assert len(bomb) < 64 * 1024  # small on the wire, ten megabytes once inflated
    await refused(site, "POST", "/apollo/er/relationships", 413, LIMIT_MESSAGE, data=bomb,
                  headers={"Content-Type": "application/json", "Content-Encoding": encoding})


async def test_compressed_body_within_the_limit_is_accepted(site):
    body = gzip.compress(orjson.dumps([rel("r1")]))
    response = await site.client.post("/apollo/er/relationships", data=io.BytesIO(body), headers={
        **site.headers, "ercollectionid": COLLECTION, "Content-Type": "application/json",
        "Content-Encoding": "gzip"})
    assert response.status == 207


# ---- headers over the size limit ------------------------------------------------------------------------------------

HEADERS_MESSAGE = "The request headers exceed the limit of 4096 bytes"


async def test_many_headers_over_the_total_limit_are_431(site):
    padding = {f"X-Pad-{i}": "p" * 100 for i in range(45)}
    await refused(site, "POST", "/apollo/er/relationships", 431, HEADERS_MESSAGE, data=[rel()], headers=padding)


async def test_one_header_over_the_total_limit_is_431(site):
    await refused(site, "POST", "/apollo/er/relationships", 431, HEADERS_MESSAGE, data=[rel()],
                  headers={"X-Correlation-Id": "c" * 6000})


async def test_headers_just_under_the_limit_pass(site):
    used = sum(len(k) + len(v) for k, v in {**site.headers, "ercollectionid": COLLECTION,
                                               "Content-Type": "application/json"}.items())
    response = await site.client.post("/apollo/er/relationships", data=io.BytesIO(orjson.dumps([rel()])), headers={
        **site.headers, "ercollectionid": COLLECTION, "Content-Type": "application/json",
        "X-Pad": "p" * (4096 - used - len("X-Pad") - 200)})
    assert response.status == 207


async def test_a_header_line_past_the_parser_ceiling_is_400_without_details(site):
    """Past twice the limit the HTTP parser refuses before the app: a plain 400, no envelope, nothing written."""
    before = await snapshot(site)
    response = await site.client.post("/apollo/er/relationships", data=io.BytesIO(orjson.dumps([rel()])), headers={
        **site.headers, "ercollectionid": COLLECTION, "Content-Type": "application/json",
        "X-Correlation-Id": "c" * 9000})
    assert response.status == 400
    text = await response.text()
    assert "Traceback" not in text and "erapi" not in text
    assert await snapshot(site) == before


# ---- deeply nested JSON ---------------------------------------------------------------------------------------------

async def test_json_nested_past_the_parser_depth_is_400(site):
    deep = b"[" * 5000 + b"]" * 5000
    body = await refused(site, "POST", "/apollo/er/relationships", 400, data=deep,
                         headers={"Content-Type": "application/json"})
    assert body["status"]["message"].startswith("The request body is not valid JSON")


@pytest.mark.parametrize("depth", [2, 29])
async def test_nested_property_values_are_400_at_their_path(site, depth):
    """Within the nesting limit (tests/test_no_500.py goes past it) the schema names the value too deep."""
    nested = orjson.loads(b'{"a":' * depth + b'"x"' + b"}" * depth)
    body = await refused(site, "POST", "/apollo/er/relationships", 400,
                         "The request body does not match its schema", data=[rel(extra=nested)])
    assert [error["path"] for error in body["errors"]] == ["/0/extra/a"]
    assert len(body["errors"][0]["message"]) < 400  # the offending value is not echoed back whole


async def test_error_messages_do_not_echo_large_values(site):
    items = [rel(f"r{i}", note="n" * 5000) for i in range(10)]
    body = await refused(site, "POST", "/apollo/er/relationships", 400, data=items)
    assert all(len(error["message"]) <= 320 for error in body["errors"])


# ---- strings at and past their bounds -------------------------------------------------------------------------------

@pytest.mark.parametrize("field, bound", [("id", 256), ("sourceEntityId", 256), ("relationshipName", 1024),
                                          ("note", 4096)])
async def test_strings_past_their_bound_are_400_and_at_it_pass(site, field, bound):
    too_long = rel("r1", **{field: "é" * (bound + 1)})  # code points count, not bytes
    body = await refused(site, "POST", "/apollo/er/relationships", 400, data=[too_long],
                         ids=("r1", "é" * (bound + 1)))
    assert [error["path"] for error in body["errors"]] == [f"/0/{field}"]
    at_bound = rel("r1", **{field: "é" * bound})
    answer = await site.relationships(COLLECTION, [at_bound])
    outcome = answer["data"]["responses"]
    assert len(outcome["success"]) + len(outcome["failure"]) == 1  # accepted by the schema, judged per item


@pytest.mark.parametrize("length, status", [(128, 403), (129, 400)])
async def test_collection_header_at_and_past_its_bound(site, length, status):
    await refused(site, "POST", "/apollo/er/relationships", status, data=[rel()], collection="c" * length)


async def test_control_characters_in_ids_are_400(site):
    body = await refused(site, "POST", "/apollo/er/relationships", 400, data=[rel("r\x001")], ids=("r\x001",))
    assert body["errors"][0]["path"] == "/0/id"


@pytest.mark.parametrize("collection_id, status", [("c" * 128, 201), ("c" * 129, 400), ("-lead", 400)])
async def test_collection_ids_at_and_past_their_bound(site, collection_id, status):
    if status == 201:
        await site.call("POST", "/apollo/collections", 201, json_body={"collectionId": collection_id})
    else:
        await refused(site, "POST", "/apollo/collections", status, data={"collectionId": collection_id},
                      collection=None)
        await site.call("GET", f"/apollo/collections/{collection_id}", 404)


@pytest.mark.parametrize("principal, status", [("p" * 256, 200), ("p" * 257, 400), ("", 400)])
async def test_grant_principals_at_and_past_their_bound(site, principal, status):
    if status == 200:
        await site.grant(COLLECTION, principal, ["read"])
    else:
        await refused(site, "PUT", f"/apollo/collections/{COLLECTION}/acl", 400,
                      data={"principal": principal, "access": ["read"]}, collection=None)


# ---- MongoDB operators in ids, keys and headers ---------------------------------------------------------------------

OPERATOR_VALUES = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, ["$ne"], 1]


@pytest.mark.parametrize("value", OPERATOR_VALUES, ids=repr)
@pytest.mark.parametrize("field", ["id", "sourceEntityId", "destinationEntityId", "relationshipType",
                                   "destinationERCollectionId"])
async def test_operator_values_in_relationship_fields_are_400(site, field, value):
    body = await refused(site, "POST", "/apollo/er/relationships", 400,
                         "The request body does not match its schema", data=[{**rel(), field: value}])
    assert [error["path"] for error in body["errors"]] == [f"/0/{field}"]


@pytest.mark.parametrize("value", OPERATOR_VALUES, ids=repr)
async def test_operator_values_in_entity_ids_are_400(site, value):
    await refused(site, "POST", "/apollo/er/entities", 400, "The request body does not match its schema",
                  data=[{**entity("e1"), "id": value}])


@pytest.mark.parametrize("key", ["$where", "$set", "a.b", ".a", "a$"])
async def test_operator_keys_are_400_at_top_level_and_nested(site, key):
    await refused(site, "POST", "/apollo/er/relationships", 400, data=[{**rel(), key: "x"}])
    await refused(site, "POST", "/apollo/er/entities", 400, data=[{**entity("e1"), "props": {key: 1}}])


@pytest.mark.parametrize("header", ['{"$ne": null}', "$where", "a.b.$c", "site name", "site/../other"])
async def test_operator_collection_headers_are_400(site, header):
    await refused(site, "POST", "/apollo/er/relationships", 400,
                  "The ercollectionid header is not a valid ERCollection id", data=[rel()], collection=header)


async def test_operator_grant_bodies_are_400(site):
    for bad in ({"principal": {"$ne": None}, "access": ["read"]}, {"principal": "bob", "access": [{"$ne": 1}]},
                {"principal": "bob", "access": ["read"], "$set": {"owner": "bob"}}):
        await refused(site, "PUT", f"/apollo/collections/{COLLECTION}/acl", 400, data=bad, collection=None)
    grants = await site.call("GET", f"/apollo/collections/{COLLECTION}/acl", 200, schema="grants")
    assert grants["data"]["grants"] == [{"principal": "alice", "access": ["read", "write"]}]


@pytest.mark.parametrize("path", ['/apollo/er/relationships/{"$ne":null}', "/apollo/er/relationships/$where",
                                  "/apollo/er/entities/%7B%22%24gt%22%3A%22%22%7D"])
async def test_operator_strings_in_paths_are_plain_ids_that_match_nothing(site, path):
    await site.relationships(COLLECTION, [rel("r1")])
    await site.call("GET", path, 404, collection=COLLECTION)


async def test_operator_strings_in_tracker_filters_match_nothing(site):
    await site.relationships(COLLECTION, [rel("r1")])
    await site.status_logs(COLLECTION, {"relationshipid": '{"$ne": null}'}, expect=404)
    await site.status_logs(COLLECTION, {"relationshipid": ".*"}, expect=404)
    # PHP-style operator syntax is just an unknown parameter name: no filter is left, so 400
    await site.status_logs(COLLECTION, {"relationshipid[$ne]": "x"}, expect=400)


async def test_storage_receives_strings_only_where_the_schema_typed_strings(site):
    """Every filter a plugin builds comes from these arguments: none may carry an operator or a non-string id."""
    storage = site.client.app[storage_key]
    calls = []
    for name in ("get_current", "get_latest_versions", "get_versions", "find_logs", "count_logs", "get_acl",
                 "put_grant", "register_collection", "claim_versions", "put_current"):
        original = getattr(storage, name)

        async def recording(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, args, kwargs))
            return await _original(*args, **kwargs)

        setattr(storage, name, recording)
    hostile_bodies = [[{**rel(), "id": {"$ne": None}}], [{**rel(), "$where": "1"}], [rel("r1")],
                      [rel("r2", destinationERCollectionId="other")]]
    for body in hostile_bodies:
        await site.client.post("/apollo/er/relationships", data=io.BytesIO(orjson.dumps(body)), headers={
            **site.headers, "ercollectionid": COLLECTION, "Content-Type": "application/json"})
    await site.client.get("/apollo/status/logs", params={"relationshipid": "$ne", "entityid": '{"$gt":""}'},
                          headers={**site.headers, "ercollectionid": COLLECTION})
    await site.client.get('/apollo/er/relationships/{"$ne":null}', headers={**site.headers, "ercollectionid": COLLECTION})
    assert calls, "the storage was not reached at all"
    for name, args, kwargs in calls:
        for value in (*args, *kwargs.values()):
            _assert_strings_only(name, value)


def _assert_strings_only(call: str, value) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str) and not key.startswith("$") and "." not in key, (call, key)
            _assert_strings_only(call, item)
        if "id" in value:
            assert isinstance(value["id"], str), (call, value["id"])
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _assert_strings_only(call, item)
    elif isinstance(value, LogQuery):
        for field in ("collection_id", "transaction_id", "relationship_id", "entity_id", "correlation_id",
                      "start_time", "end_time"):
            assert getattr(value, field) is None or isinstance(getattr(value, field), str), (call, field)
    else:
        assert value is None or isinstance(value, (str, int, float, bool)), (call, value)


# ---- client-supplied system fields ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, item", [("relationships", rel("r1", sysData={"sysRelationshipVersion": 99})),
                                        ("entities", entity("e1", sysData={"sysEntityVersion": 99})),
                                        ("relationships", rel("r1", sysData=None))])
async def test_client_supplied_system_data_is_400(site, kind, item):
    body = await refused(site, "POST", f"/apollo/er/{kind}", 400, data=[item])
    assert body["errors"] == [{"path": "/0/sysData", "message": "sysData is set by the service and must not be sent"}]


async def test_client_supplied_derived_fields_fail_the_item_and_write_nothing_for_it(site):
    answer = await site.relationships(COLLECTION, [rel("r1", brickRelationshipType="BRICK_0_4__feeds"), rel("r2")])
    assert [f["id"] for f in answer["data"]["responses"]["failure"]] == ["r1"]
    await site.relationship(COLLECTION, "r1", expect=404)
    answer = await site.entities(COLLECTION, [entity("e1", brickEntityType="BRICK_0_4__Point")])
    assert [f["id"] for f in answer["data"]["responses"]["failure"]] == ["e1"]
    await site.call("GET", "/apollo/er/entities/e1", 404, collection=COLLECTION)


async def test_client_supplied_is_active_is_overwritten(site):
    await site.relationships(COLLECTION, [rel("r1", isActive=False)])
    [stored] = (await site.relationship(COLLECTION, "r1"))["data"]
    assert stored["isActive"] is True


async def test_fields_named_like_storage_internals_are_the_clients_own(site):
    """`_id`, `ercollectionid`, `recordKind` are ordinary client properties: kept, returned, never steering storage."""
    await site.register("other")
    sneaky = rel("r1", _id="other-r1", ercollectionid="other", recordKind="grant")
    await site.relationships(COLLECTION, [sneaky])
    [stored] = (await site.relationship(COLLECTION, "r1"))["data"]
    assert (stored["_id"], stored["ercollectionid"], stored["recordKind"]) == ("other-r1", "other", "grant")
    await site.relationship("other", "r1", expect=404)
    grants = await site.call("GET", "/apollo/collections/other/acl", 200, schema="grants")
    assert grants["data"]["grants"] == [{"principal": "alice", "access": ["read", "write"]}]


# ---- unknown query parameters on writes -----------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, data", [
    ("POST", "/apollo/er/relationships", [rel()]),
    ("POST", "/apollo/er/entities", [entity("e1")]),
    ("POST", "/apollo/collections", {"collectionId": "new-one"}),
    ("PUT", f"/apollo/collections/{COLLECTION}/acl", {"principal": "bob", "access": ["read"]}),
])
@pytest.mark.parametrize("params", [{"debug": "true"}, {"$where": "1"}, {"CREATEINVERSE": "false"}])
async def test_unknown_query_parameters_on_writes_are_400(site, method, path, data, params):
    operation = OPERATIONS[(method, path.replace(COLLECTION, "{collectionId}"))]
    allowed = ", ".join(sorted(operation.query_names)) or "no query parameters"
    name = next(iter(params))
    await refused(site, method, path, 400, f"Unknown query parameter {name}: this operation takes {allowed}",
                  data=data, params=params)
    await site.call("GET", "/apollo/collections/new-one", 404)
    assert (await site.call("GET", f"/apollo/collections/{COLLECTION}/acl", 200, schema="grants"))["data"][
        "grants"] == [{"principal": "alice", "access": ["read", "write"]}]


async def test_documented_query_parameters_on_writes_pass(site):
    response = await site.client.post("/apollo/er/relationships?createInverse=false",
                                      data=io.BytesIO(orjson.dumps([rel()])),
                                      headers={**site.headers, "ercollectionid": COLLECTION,
                                               "Content-Type": "application/json"})
    assert response.status == 207


# ---- errors leak nothing; 405 with Allow; no-store --------------------------------------------------------------------

SECRET = "mongodb://admin:hunter2@db.internal:27017 Traceback (most recent call last)"


@pytest.mark.parametrize("failure, status, message", [
    (StorageError(SECRET), 503, "The storage backend is unavailable; retry later"),
    (RuntimeError(SECRET), 500, "Internal server error"),
    (KeyError(SECRET), 500, "Internal server error"),
])
async def test_failures_inside_answer_without_internals(site, failure, status, message):
    storage = site.client.app[storage_key]

    async def broken(*args, **kwargs):
        raise failure

    storage.get_current = broken
    for method, path in (("POST", "/apollo/er/relationships"), ("GET", "/apollo/er/relationships/r1")):
        response = await site.client.request(method, path, data=io.BytesIO(orjson.dumps([rel()])), headers={
            **site.headers, "ercollectionid": COLLECTION, "Content-Type": "application/json",
            "Accept": "text/html"})
        assert response.status == status
        text = await response.text()
        assert orjson.loads(text) == {"status": {"message": message, "code": str(status)}}
        for secret in ("hunter2", "Traceback", "db.internal", "File \""):
            assert secret not in text


@pytest.mark.parametrize("method, path, allow", [
    ("DELETE", "/apollo/er/relationships", {"GET", "HEAD", "POST"}),
    ("PUT", "/apollo/er/entities", {"GET", "HEAD", "POST"}),
    ("PUT", "/apollo/er/relationships/r1", {"GET", "HEAD", "DELETE"}),
    ("PATCH", "/apollo/collections/site/acl", {"GET", "HEAD", "PUT"}),
    ("POST", "/apollo/status/logs", {"GET", "HEAD"}),
    ("DELETE", "/apollo/openapi.json", {"GET", "HEAD"}),
])
async def test_wrong_method_is_405_with_allow(site, method, path, allow):
    body = await refused(site, method, path, 405, "Method Not Allowed", data=[rel()])
    assert set(body["_headers"]["Allow"].split(",")) == allow


async def test_unknown_route_is_404_in_the_envelope(site):
    await refused(site, "GET", "/apollo/../etc/passwd", 404, "Not Found")
    await refused(site, "POST", "/apollo/er/relationships/", 404, "Not Found", data=[rel()])


async def test_every_authenticated_answer_is_no_store(site):
    for (method, path), operation in OPERATIONS.items():
        if not operation.scopes:
            continue
        concrete = path.replace("{collectionId}", COLLECTION).replace("{type}", "BRICK_0_4__AHU")
        concrete = concrete.replace("{entityId}", SOURCE).replace("{relationshipId}", "r1")
        for headers in (site.headers, {"Authorization": "Bearer not-a-token"}):
            response = await site.client.request(method, concrete, headers={**headers, "ercollectionid": COLLECTION})
            assert response.headers.get("Cache-Control") == "no-store", (method, path, response.status)


async def test_bad_tokens_are_not_echoed(site):
    forged = token("alice")[:-4] + "AAAA"
    response = await site.client.get("/apollo/schema/entitytypes", headers={"Authorization": f"Bearer {forged}"})
    assert response.status == 401
    assert forged not in await response.text()


async def test_no_cross_origin_access_is_granted(site):
    """No CORS: a browser page of another origin can neither preflight nor read an answer."""
    preflight = await site.client.options("/apollo/er/relationships", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = await site.client.get("/apollo/schema/entitytypes", headers={**site.headers,
                                                                          "Origin": "https://evil.example"})
    assert response.status == 200
    assert not any(name.lower().startswith("access-control-") for name in response.headers)
