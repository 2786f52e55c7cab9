"""GET /apollo/status/logs: every filter, case-insensitive names, limits, continuation tokens, rights, shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from erapi.routes import OPERATIONS

from tests.api_fixtures import entity, relationship

NO_FILTER = (
    "At least one filter is required: transactionid, relationshipid, entityid, correlationid, startTime or endTime"
)
BAD_LIMIT = "limit must be a whole number from 1 to 1000"


@pytest.fixture
async def site(api):
    await api.register("site")
    return api


async def write(api, items, collection: str = "site", correlation: str | None = None) -> str:
    headers = {"X-Correlation-Id": correlation} if correlation else None
    body = await api.entities(collection, items, headers=headers)
    return body["transactionId"]


def entity_ids(logs: dict) -> list[str]:
    return [r["serviceData"]["entityId"] for r in logs["data"]]


def shifted(timestamp: str, hours: int) -> str:
    """The same instant written with another UTC offset."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat()


# ---- shape ----------------------------------------------------------------------------------------------------------


async def test_response_shape(site):
    transaction = await write(site, [entity("a"), entity("b", "Nope")])
    response = await site.client.get("/apollo/status/logs", params={"transactionid": transaction},
                                     headers={**site.headers, "ercollectionid": "site"})
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"status", "data", "paging"}
    assert body["status"] == {"message": "", "code": "OK"}
    assert body["paging"] == {"totalCount": 2, "continuationToken": None}
    first, second = body["data"]
    assert first["id"] < second["id"]
    for record, state, message, entity_id in ((first, "Completed", "Entity upserted successfully", "a"),
                                              (second, "Failed", "Entity type Nope not found in the entity type "
                                                                 "catalog", "b")):
        assert {k: record[k] for k in ("transactionId", "correlationId", "requestAction", "requestObject", "state",
                                       "message", "serviceData")} == {
            "transactionId": transaction,
            "correlationId": transaction,
            "requestAction": "Upsert",
            "requestObject": "Entity",
            "state": state,
            "message": message,
            "serviceData": {"erCollectionId": "site", "entityId": entity_id, "relationshipId": None},
        }
        assert [s["state"] for s in record["stateHistory"]] == ["Requested", "Processing", state]
        for step in record["stateHistory"]:
            assert set(step) == {"timestamp", "unixTimestamp", "state"}
            moment = datetime.fromisoformat(step["timestamp"].replace("Z", "+00:00"))
            assert int(moment.timestamp() * 1000) == step["unixTimestamp"]
        assert record["receivedTimestamp"] == record["stateHistory"][0]["timestamp"]


# ---- filters --------------------------------------------------------------------------------------------------------


async def test_transactionid_filter(site):
    first = await write(site, [entity("a"), entity("b")])
    await write(site, [entity("c")])
    logs = await site.status_logs("site", {"transactionid": first})
    assert entity_ids(logs) == ["a", "b"]
    assert {r["transactionId"] for r in logs["data"]} == {first}
    assert logs["paging"]["totalCount"] == 2


async def test_state_narrows_the_filters_to_the_records_in_that_state(site):
    first = await write(site, [entity("a"), entity("b", "Nope"), entity("c"), entity("d", "Nope")])
    await write(site, [entity("e", "Nope")])
    logs = await site.status_logs("site", {"transactionid": first, "state": "Failed", "limit": "1"})
    assert (entity_ids(logs), logs["paging"]["totalCount"]) == (["b"], 2)
    logs = await site.status_logs("site", {"transactionid": first, "state": "Failed",
                                           "continuationToken": logs["paging"]["continuationToken"]})
    assert (entity_ids(logs), logs["paging"]["continuationToken"]) == (["d"], None)
    assert entity_ids(await site.status_logs("site", {"transactionid": first, "State": "Completed"})) == ["a", "c"]
    assert entity_ids(await site.status_logs("site", {"entityid": "e", "state": "Failed"})) == ["e"]
    await site.status_logs("site", {"transactionid": first, "state": "Processing"}, expect=404)
    body = await site.call("GET", "/apollo/status/logs", 400, collection="site",
                           params={"transactionid": first, "state": "failed"})
    assert body["status"]["message"] == "state must be one of Requested, Processing, Completed, Failed"
    body = await site.call("GET", "/apollo/status/logs", 400, collection="site", params={"state": "Failed"})
    assert body["status"]["message"] == NO_FILTER


async def test_entityid_filter_spans_transactions(site):
    await write(site, [entity("a"), entity("b")])
    await write(site, [entity("a", entityName="again")])
    logs = await site.status_logs("site", {"entityid": "a"})
    assert entity_ids(logs) == ["a", "a"]
    assert len({r["transactionId"] for r in logs["data"]}) == 2


async def test_relationshipid_filter(site):
    await write(site, [entity("a"), entity("b")])
    body = await site.relationships("site", [relationship("r1", "a", "b"), relationship("r2", "b", "a")])
    logs = await site.status_logs("site", {"relationshipid": "r2"})
    [record] = logs["data"]
    assert record["transactionId"] == body["transactionId"]
    assert record["requestObject"] == "Relationship"
    assert record["serviceData"] == {"erCollectionId": "site", "entityId": None, "relationshipId": "r2"}
    # an entity id is not a relationship id and the other way round
    await site.status_logs("site", {"relationshipid": "a"}, expect=404)
    await site.status_logs("site", {"entityid": "r1"}, expect=404)


async def test_correlationid_comes_from_the_request_header(site):
    one = await write(site, [entity("a")], correlation="import-42")
    two = await write(site, [entity("b"), entity("c")], correlation="import-42")
    await write(site, [entity("d")], correlation="import-43")
    logs = await site.status_logs("site", {"correlationid": "import-42"})
    assert entity_ids(logs) == ["a", "b", "c"]
    assert [r["transactionId"] for r in logs["data"]] == [one, two, two]
    assert {r["correlationId"] for r in logs["data"]} == {"import-42"}
    body = await site.relationships("site", relationship("r1", "a", "b"), headers={"X-Correlation-Id": "import-42"})
    logs = await site.status_logs("site", {"correlationid": "import-42", "transactionid": body["transactionId"]})
    assert [r["serviceData"]["relationshipId"] for r in logs["data"]] == ["r1"]


async def test_without_or_with_an_unusable_correlation_header_the_transaction_id_is_used(site):
    plain = await write(site, [entity("a")])
    too_long = await write(site, [entity("b")], correlation="x" * 257)
    for transaction in (plain, too_long):
        logs = await site.status_logs("site", {"correlationid": transaction})
        assert [r["transactionId"] for r in logs["data"]] == [transaction]
    await site.status_logs("site", {"correlationid": "x" * 257}, expect=404)


async def test_start_and_end_time_are_inclusive_bounds_on_the_received_time(site):
    one = await write(site, [entity("a"), entity("b")])
    two = await write(site, [entity("c")])
    t1 = (await site.status_logs("site", {"transactionid": one}))["data"][0]["receivedTimestamp"]
    t2 = (await site.status_logs("site", {"transactionid": two}))["data"][0]["receivedTimestamp"]
    assert t1 < t2
    assert entity_ids(await site.status_logs("site", {"startTime": t2})) == ["c"]
    assert entity_ids(await site.status_logs("site", {"endTime": t1})) == ["a", "b"]
    assert entity_ids(await site.status_logs("site", {"startTime": t1, "endTime": t1})) == ["a", "b"]
    assert entity_ids(await site.status_logs("site", {"startTime": t1, "endTime": t2})) == ["a", "b", "c"]
    # the same instants with other offsets, and without a zone (read as UTC)
    assert entity_ids(await site.status_logs("site", {"startTime": shifted(t2, 2)})) == ["c"]
    assert entity_ids(await site.status_logs("site", {"endTime": shifted(t1, -5)})) == ["a", "b"]
    assert entity_ids(await site.status_logs("site", {"endTime": t1.rstrip("Z")})) == ["a", "b"]
    # combined with another filter
    assert entity_ids(await site.status_logs("site", {"startTime": t1, "entityid": "c"})) == ["c"]
    await site.status_logs("site", {"endTime": t1, "entityid": "c"}, expect=404)
    await site.status_logs("site", {"startTime": t2, "endTime": t1}, expect=404)


@pytest.mark.parametrize("name, public", [("startTime", "startTime"), ("endtime", "endTime")])
async def test_a_time_that_is_not_iso_8601_is_400(site, name, public):
    await write(site, [entity("a")])
    body = await site.call("GET", "/apollo/status/logs", 400, collection="site", params={name: "yesterday"})
    assert body["status"]["message"] == f"{public} must be an ISO 8601 timestamp between 0001-01-01 and 9999-12-31 in UTC"


async def test_parameter_names_are_case_insensitive(site):
    transaction = await write(site, [entity("a"), entity("b")], correlation="c-1")
    t = (await site.status_logs("site", {"transactionid": transaction}))["data"][0]["receivedTimestamp"]
    assert entity_ids(await site.status_logs("site", {"TransactionId": transaction})) == ["a", "b"]
    assert entity_ids(await site.status_logs("site", {"ENTITYID": "b"})) == ["b"]
    assert entity_ids(await site.status_logs("site", {"CorrelationID": "c-1"})) == ["a", "b"]
    assert entity_ids(await site.status_logs("site", {"starttime": t, "ENDTIME": t})) == ["a", "b"]
    first = await site.status_logs("site", {"transactionId": transaction, "LIMIT": "1"})
    assert entity_ids(first) == ["a"]
    rest = await site.status_logs("site", {"TRANSACTIONID": transaction, "Limit": "1",
                                           "ContinuationToken": first["paging"]["continuationToken"]})
    assert entity_ids(rest) == ["b"]


# ---- request-level refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{}, {"limit": "10"}])
async def test_no_filter_is_400(site, params):
    await write(site, [entity("a")])
    body = await site.call("GET", "/apollo/status/logs", 400, collection="site", params=params)
    assert body["status"]["message"] == NO_FILTER


@pytest.mark.parametrize("params, unknown", [
    ({"foo": "bar"}, "foo"),
    ({"entity_id": "a"}, "entity_id"),
    ({"EntityId": "a", "transaction_id": "t"}, "transaction_id"),
    ({"transactionid": "t", "PageSize": "5"}, "PageSize"),
])
async def test_an_unknown_parameter_is_400_like_on_a_list_not_ignored(site, params, unknown):
    await write(site, [entity("a")])
    allowed = ", ".join(sorted(OPERATIONS[("GET", "/apollo/status/logs")].query_names))
    body = await site.call("GET", "/apollo/status/logs", 400, collection="site", params=params)
    assert body["status"]["message"] == f"Unknown query parameter {unknown}: this operation takes {allowed}"


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1", "", "1.5", "10a"])
async def test_limit_out_of_range_is_400(site, limit):
    transaction = await write(site, [entity("a")])
    body = await site.call("GET", "/apollo/status/logs", 400, collection="site",
                           params={"transactionid": transaction, "limit": limit})
    assert body["status"]["message"] == BAD_LIMIT


@pytest.mark.parametrize("limit", ["1", "1000"])
async def test_limit_bounds_are_accepted(site, limit):
    transaction = await write(site, [entity("a"), entity("b")])
    logs = await site.status_logs("site", {"transactionid": transaction, "limit": limit})
    assert len(logs["data"]) == min(int(limit), 2)
    assert logs["paging"]["totalCount"] == 2


async def test_nothing_matching_is_404(site):
    await write(site, [entity("a")])
    body = await site.call("GET", "/apollo/status/logs", 404, collection="site", params={"entityid": "ghost"})
    assert body["status"]["message"] == "No status records match the query"


async def test_records_of_another_collection_are_not_visible(site):
    await site.register("other")
    transaction = await write(site, [entity("a")], collection="other")
    await site.status_logs("site", {"transactionid": transaction}, expect=404)
    await site.status_logs("site", {"entityid": "a"}, expect=404)
    assert entity_ids(await site.status_logs("other", {"transactionid": transaction})) == ["a"]


async def test_no_grant_is_403_and_any_grant_is_enough(site):
    transaction = await write(site, [entity("a")])
    bob = site.as_("bob")
    body = await bob.call("GET", "/apollo/status/logs", 403, collection="site", params={"transactionid": transaction})
    assert body["status"]["message"] == "ERCollection site is not registered or the caller has no grant on it"
    body = await bob.call("GET", "/apollo/status/logs", 403, collection="nowhere",
                          params={"transactionid": transaction})
    assert body["status"]["message"] == "ERCollection nowhere is not registered or the caller has no grant on it"
    await site.grant("site", "bob", ["write"])
    assert entity_ids(await bob.status_logs("site", {"transactionid": transaction})) == ["a"]


async def test_either_scope_reads_the_tracker_but_no_scope_is_403(site):
    transaction = await write(site, [entity("a")])
    for scopes in ("apollo_read", "apollo_write"):
        await site.as_("alice", scopes).status_logs("site", {"transactionid": transaction})
    body = await site.as_("alice", "other_scope").call("GET", "/apollo/status/logs", 403, collection="site",
                                                        params={"transactionid": transaction})
    assert body["status"]["message"] == "The token lacks the scope apollo_read or apollo_write"


async def test_missing_collection_header_is_400(site):
    transaction = await write(site, [entity("a")])
    body = await site.call("GET", "/apollo/status/logs", 400, params={"transactionid": transaction})
    assert body["status"]["message"] == "The ercollectionid header is required"


# ---- paging ---------------------------------------------------------------------------------------------------------


async def pages(api, params: dict, collection: str = "site") -> list[dict]:
    """Every page of a query, following the continuation tokens to the end."""
    found = [await api.status_logs(collection, params)]
    while found[-1]["paging"]["continuationToken"] is not None:
        assert len(found) < 100
        token = found[-1]["paging"]["continuationToken"]
        found.append(await api.status_logs(collection, {**params, "continuationToken": token}))
    return found


def assert_every_record_once_in_order(all_pages: list[dict], expected_ids: list[str], limit: int) -> None:
    records = [record for page in all_pages for record in page["data"]]
    assert [len(page["data"]) for page in all_pages[:-1]] == [limit] * (len(all_pages) - 1)
    assert 1 <= len(all_pages[-1]["data"]) <= limit
    assert {page["paging"]["totalCount"] for page in all_pages} == {len(expected_ids)}
    assert [r["serviceData"]["entityId"] for r in records] == expected_ids
    assert len({r["id"] for r in records}) == len(records)
    keys = [(r["receivedTimestamp"], r["id"]) for r in records]
    assert keys == sorted(keys)


async def test_limit_paging_through_250_records_of_three_writes(site):
    expected = []
    for start, count in ((0, 100), (100, 100), (200, 50)):
        batch = [entity(f"e{n:03d}") for n in range(start, start + count)]
        await write(site, batch, correlation="bulk-load")
        expected.extend(item["id"] for item in batch)
    all_pages = await pages(site, {"correlationid": "bulk-load", "limit": "40"})
    assert len(all_pages) == 7
    assert_every_record_once_in_order(all_pages, expected, 40)
    # page size may change between pages: only the filters are bound to the token
    first = all_pages[0]
    rest = await site.status_logs("site", {"correlationid": "bulk-load", "limit": "1000",
                                           "continuationToken": first["paging"]["continuationToken"]})
    assert [r["serviceData"]["entityId"] for r in rest["data"]] == expected[40:]
    assert rest["paging"]["continuationToken"] is None


async def test_limit_paging_through_one_250_item_transaction(app_factory):
    api = await app_factory(server={"max_items": 250})
    await api.register("site")
    items = [entity(f"e{n:03d}") for n in range(250)]
    transaction = await write(api, items)
    all_pages = await pages(api, {"transactionid": transaction, "limit": "100"})
    assert len(all_pages) == 3
    assert_every_record_once_in_order(all_pages, [item["id"] for item in items], 100)


async def test_a_page_that_ends_exactly_at_the_last_record_has_no_token(site):
    transaction = await write(site, [entity("a"), entity("b")])
    logs = await site.status_logs("site", {"transactionid": transaction, "limit": "2"})
    assert logs["paging"] == {"totalCount": 2, "continuationToken": None}


async def first_token(api, params: dict) -> str:
    token = (await api.status_logs("site", {**params, "limit": "1"}))["paging"]["continuationToken"]
    assert token
    return token


async def test_a_tampered_token_is_400(site):
    transaction = await write(site, [entity("a"), entity("b"), entity("c")])
    token = await first_token(site, {"transactionid": transaction})
    payload, _, signature = token.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{flipped}.{signature}", f"{payload}.{signature[:-2]}", payload, "garbage", "a.b"):
        body = await site.call("GET", "/apollo/status/logs", 400, collection="site",
                               params={"transactionid": transaction, "continuationToken": bad})
        assert body["status"]["message"] == "continuationToken is invalid"


async def test_a_token_used_with_another_filter_is_400(site):
    transaction = await write(site, [entity("a"), entity("b"), entity("c")], correlation="c-1")
    token = await first_token(site, {"transactionid": transaction})
    for params in ({"correlationid": "c-1"}, {"transactionid": transaction, "entityid": "b"},
                   {"transactionid": transaction[:-1] + ("1" if transaction.endswith("0") else "0")}):
        body = await site.call("GET", "/apollo/status/logs", 400, collection="site",
                               params={**params, "continuationToken": token})
        assert body["status"]["message"] == "continuationToken was issued for another collection or query"


async def test_a_token_used_with_another_collection_is_400(site):
    await site.register("other")
    await write(site, [entity("a"), entity("b")], correlation="same")
    await write(site, [entity("a"), entity("b")], collection="other", correlation="same")
    token = await first_token(site, {"correlationid": "same"})
    body = await site.call("GET", "/apollo/status/logs", 400, collection="other",
                           params={"correlationid": "same", "continuationToken": token})
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"
