"""Idempotency-Key: a retry gets the first answer (same transactionId) and writes nothing, for the retention."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import pytest

from erapi.app import create_app
from erapi.idempotency import scoped_key_id
from erapi.keys import idempotency_key, storage_key
from tests.api_fixtures import Api, entity, make_config, relationship
from tests.clock import ManualClock
from tests.write_options_helpers import stored_state

C = "c1"
RETRIES = 20
BATCH = [relationship(f"r{i}", "a", "b") for i in range(5)]


@pytest.fixture
async def site(aiohttp_client, storage_name, storage_settings) -> tuple[Api, ManualClock]:
    app = create_app(make_config(storage_name, storage_settings, idempotency={"wait_seconds": 120.0}))
    api = Api(await aiohttp_client(app))
    clock = ManualClock(time.time())
    app[idempotency_key].clock = clock
    await api.register(C)
    await api.entities(C, [entity("a"), entity("b")])
    return api, clock


async def post(api: Api, body, key: str, collection: str = C, **headers) -> tuple[int, bytes, dict]:
    response = await api.client.post(
        "/apollo/er/relationships", data=orjson.dumps(body),
        headers={**api.headers, "ercollectionid": collection, "Content-Type": "application/json",
                 "Idempotency-Key": key, **headers})
    return response.status, await response.read(), response.headers


async def versions(api: Api, ids, collection: str = C) -> dict[str, list[int]]:
    storage = api.client.app[storage_key]
    return {i: [v["sysData"]["sysRelationshipVersion"] for v in await storage.get_versions("relationships",
                                                                                          collection, i)]
            for i in ids}


async def test_a_retry_gets_the_first_answer_and_writes_nothing(site):
    api, _ = site
    status, body, headers = await post(api, BATCH, "key-1")
    assert status == 207 and "Idempotent-Replayed" not in headers
    storage = api.client.app[storage_key]
    before = await stored_state(storage, [C])
    # the same request, spelled differently (key order, spacing): the same request
    again = await api.client.post("/apollo/er/relationships", data=orjson.dumps(BATCH, option=orjson.OPT_SORT_KEYS),
                                  headers={**api.headers, "ercollectionid": C, "Content-Type": "application/json",
                                           "Idempotency-Key": "key-1"})
    assert (again.status, await again.read()) == (status, body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["X-Transaction-Id"] == headers["X-Transaction-Id"] == orjson.loads(body)["transactionId"]
    assert await stored_state(storage, [C]) == before
    assert await versions(api, [i["id"] for i in BATCH]) == {i["id"]: [1] for i in BATCH}


async def test_the_same_key_with_another_body_is_422_and_writes_nothing(site):
    api, _ = site
    await post(api, BATCH, "key-1")
    before = await stored_state(api.client.app[storage_key], [C])
    status, body, _ = await post(api, BATCH[:1], "key-1")
    assert status == 422
    assert orjson.loads(body)["status"] == {
        "message": "Idempotency-Key key-1 was used with a different request (body, query or headers); "
                   "send a new key for a new request", "code": "422"}
    status, _, _ = await post(api, BATCH, "key-1", **{"async": "true"})
    assert status == 422  # the same body sent as a job is another request
    assert await stored_state(api.client.app[storage_key], [C]) == before


async def test_a_key_belongs_to_one_principal_and_one_collection(site):
    api, _ = site
    await api.register("c2")
    await api.entities("c2", [entity("a"), entity("b")])
    await api.grant(C, "bob", ["read", "write"])
    first = orjson.loads((await post(api, BATCH, "shared"))[1])
    other_collection = orjson.loads((await post(api, BATCH, "shared", collection="c2"))[1])
    other_principal = orjson.loads((await post(api.as_("bob"), BATCH, "shared"))[1])
    assert len({first["transactionId"], other_collection["transactionId"], other_principal["transactionId"]}) == 3
    # bob's request was processed, not replayed: it found alice's content and wrote no version (docs/API.md)
    assert [entry.get("unchanged") for entry in other_principal["data"]["responses"]["success"]] == [True] * 5
    assert (await versions(api, ["r0"]))["r0"] == [1]


async def test_twenty_concurrent_retries_get_twenty_identical_answers_and_one_version_each(site):
    api, _ = site
    answers = await asyncio.gather(*(post(api, BATCH, "timeout-retry") for _ in range(RETRIES)))
    assert len({(status, body) for status, body, _ in answers}) == 1
    assert answers[0][0] == 207
    assert await versions(api, [i["id"] for i in BATCH]) == {i["id"]: [1] for i in BATCH}
    assert sum(1 for *_, headers in answers if "Idempotent-Replayed" not in headers) == 1


async def test_an_async_job_is_accepted_once(site):
    api, _ = site
    answers = [await post(api, BATCH, "job-key", **{"async": "true"}) for _ in range(3)]
    assert {status for status, _, _ in answers} == {202} and len({body for _, body, _ in answers}) == 1
    transaction_id = orjson.loads(answers[0][1])["transactionId"]
    logs = await api.status_logs(C, {"transactionid": transaction_id, "limit": "1000"})
    assert len(logs["data"]) == 1 + len(BATCH)  # one job, not three


async def test_after_the_retention_the_key_starts_a_new_request(site):
    api, clock = site
    first = orjson.loads((await post(api, BATCH, "old-key"))[1])
    clock.now += api.client.app[idempotency_key].settings.retention_seconds - 1
    assert orjson.loads((await post(api, BATCH, "old-key"))[1]) == first
    clock.now += 2
    later = orjson.loads((await post(api, BATCH, "old-key"))[1])
    assert later["transactionId"] != first["transactionId"]
    # processed anew: the same content again writes no version, and the answer says so
    assert [entry.get("unchanged") for entry in later["data"]["responses"]["success"]] == [True] * 5
    assert (await versions(api, ["r0"]))["r0"] == [1]


async def test_a_refused_first_request_keeps_nothing_and_its_retry_is_processed_anew(site):
    api, _ = site
    status, _, _ = await post(api, BATCH[:1], "conditional", **{"If-Match": '"1"'})
    assert status == 412  # r0 does not exist yet
    await api.relationships(C, BATCH[:1])
    status, body, headers = await post(api, BATCH[:1], "conditional", **{"If-Match": '"1"'})
    assert status == 207 and "Idempotent-Replayed" not in headers
    # processed anew: the content equals version 1, so nothing is written and the entry says so
    assert orjson.loads(body)["data"]["responses"]["success"][0]["unchanged"] is True
    assert (await versions(api, ["r0"]))["r0"] == [1]


async def running_elsewhere(api: Api, clock: ManualClock, key: str, lease_left: float) -> None:
    """The key held by a first request still running in another process (or dead there)."""
    status, _, _ = await post(api, BATCH, "probe-" + key)  # learn this request's fingerprint from storage
    assert status == 207
    storage = api.client.app[storage_key]
    probe = await storage.get_idempotency_key(scoped_key_id(api.subject, C, "probe-" + key))
    await storage.claim_idempotency_key({
        "id": scoped_key_id(api.subject, C, key), "owner": "another process", "state": "running",
        "fingerprint": probe["fingerprint"], "expiresAt": clock.now + 3600,
        "leaseExpiresAt": clock.now + lease_left})


async def test_a_retry_while_the_first_request_runs_gets_409_after_the_bounded_wait(site):
    api, clock = site
    await running_elsewhere(api, clock, "busy", lease_left=60)
    idempotency = api.client.app[idempotency_key]
    idempotency.settings = dataclasses.replace(idempotency.settings, wait_seconds=0.3)
    before = await stored_state(api.client.app[storage_key], [C])
    status, body, headers = await post(api, BATCH, "busy")
    assert status == 409 and headers["Retry-After"] == "1"
    assert orjson.loads(body)["status"]["message"] == (
        "The request with Idempotency-Key busy is still being processed; retry later")
    assert await stored_state(api.client.app[storage_key], [C]) == before


async def test_a_retry_while_the_first_request_runs_waits_and_gets_its_answer(site):
    api, clock = site
    await running_elsewhere(api, clock, "slow", lease_left=60)
    storage = api.client.app[storage_key]
    retry = asyncio.create_task(post(api, BATCH, "slow"))
    for _ in range(10):  # let the retry find the running request and start waiting for it
        await asyncio.sleep(0)
    answer = {"status": 207, "body": '{"from": "the first request"}', "headers": {"X-Transaction-Id": "t-1"}}
    assert await storage.finish_idempotency_key(scoped_key_id(api.subject, C, "slow"), "another process",
                                                {"state": "done", "answer": answer})
    status, body, headers = await retry
    assert (status, body, headers["X-Transaction-Id"]) == (207, b'{"from": "the first request"}', "t-1")
    assert headers["Idempotent-Replayed"] == "true"
    assert await versions(api, [i["id"] for i in BATCH]) == {i["id"]: [1] for i in BATCH}  # the probe's only


async def test_a_first_request_whose_process_died_gives_its_key_up_after_its_lease(site):
    api, clock = site
    await running_elsewhere(api, clock, "orphan", lease_left=-1)
    status, _, headers = await post(api, BATCH, "orphan")
    assert status == 207 and "Idempotent-Replayed" not in headers


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é"])
async def test_a_malformed_key_is_400(site, key):
    api, _ = site
    status, body, _ = await post(api, BATCH, key)
    assert status == 400
    assert orjson.loads(body)["status"]["message"] == (
        "The Idempotency-Key header must be 1-255 visible ASCII characters (no spaces)")


async def test_a_dry_run_stores_no_key(site):
    api, _ = site
    dry = await api.relationships(C, BATCH, params={"validateOnly": "true"}, headers={"Idempotency-Key": "k"})
    real = orjson.loads((await post(api, BATCH, "k"))[1])
    assert real["transactionId"] != dry["transactionId"] and "validateOnly" not in real
