"""Webhook subscriptions: the API, the allow-list, and deliveries to a receiver on loopback (signed, in order, at
least once, retried with backoff, paused when the receiver keeps failing), on every storage plugin.

Deliveries are driven step by step by a DeliveryWorker on an injected clock, so the backoff waits pass without
sleeping; one test runs the service's own background worker.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import orjson
import pytest

from erapi.allowlist import AllowListResolver, TargetPolicy, TargetRefused
from erapi.config import WebhooksConfig
from erapi.delivery import DeliveryWorker
from erapi.keys import acl_key, storage_key
from erapi.subscriptions import signature
from tests.api_fixtures import Api, entity, relationship
from tests.clock import ManualClock
from tests.test_metrics import moved, scrape
from tests.webhook_receiver import SECRET, Receiver

SUBSCRIPTIONS = "/apollo/er/ercollections/{}/subscriptions"
LOOPBACK = {"allowed_targets": ("127.0.0.1",), "deliver": False}


async def subscribe(api: Api, url: str, expect: int = 201, collection: str = "c1", **body) -> dict:
    answer = await api.call("POST", SUBSCRIPTIONS.format(collection), expect,
                            json_body={"url": url, "secret": SECRET, **body},
                            schema="subscription" if expect == 201 else None)
    return answer["data"] if expect == 201 else answer


async def subscription(api: Api, subscription_id: str, expect: int = 200, collection: str = "c1") -> dict:
    answer = await api.call("GET", f"{SUBSCRIPTIONS.format(collection)}/{subscription_id}", expect,
                            schema="subscription" if expect == 200 else None)
    return answer.get("data")


@pytest.fixture
async def hooks(app_factory) -> Api:
    """Alice owns c1 with 5 AHUs; webhooks may post to 127.0.0.1; no background delivery (tests step it)."""
    api = await app_factory(webhooks=LOOPBACK)
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(5)])
    return api


def stepping_worker(api: Api, clock: ManualClock, **settings) -> DeliveryWorker:
    app = api.client.app
    worker = DeliveryWorker(app[storage_key], app[acl_key], WebhooksConfig(**{**LOOPBACK, **settings}), clock=clock)
    worker.open()
    return worker


async def run_until(worker: DeliveryWorker, clock: ManualClock, done, steps: int = 200) -> None:
    """Step every delivery the worker claims, moving the clock past each wait, until ``done()``."""
    deliveries = await worker.claim()
    assert deliveries, "nothing to claim"
    for _ in range(steps):
        if done():
            return
        for delivery in list(deliveries):
            wait = await delivery.step()
            if wait is None:
                deliveries.remove(delivery)
            else:
                clock.advance(max(wait, 0.0))  # IDLE (nothing new) is negative
        if not deliveries:
            return
    raise AssertionError("deliveries did not finish")


# ---- the API --------------------------------------------------------------------------------------------------


async def test_a_subscription_is_created_listed_read_and_deleted_and_its_secret_never_shown(hooks):
    created = await subscribe(hooks, "http://127.0.0.1:9/hook", filters={"kinds": ["relationship"]})
    assert created["state"] == "active" and created["filters"] == {"kinds": ["relationship"]}
    assert created["lastDeliveredSequence"] >= 5  # from now on: the five entities written before are not sent
    assert "secret" not in created and SECRET not in str(created)
    listed = await hooks.call("GET", SUBSCRIPTIONS.format("c1"), 200, schema="subscription-list")
    assert [item["id"] for item in listed["data"]] == [created["id"]] and listed["paging"]["totalCount"] == 1
    assert SECRET not in str(listed)
    assert await subscription(hooks, created["id"]) == created
    await hooks.call("DELETE", f"{SUBSCRIPTIONS.format('c1')}/{created['id']}", 200, schema="subscription")
    await subscription(hooks, created["id"], expect=404)
    await hooks.call("DELETE", f"{SUBSCRIPTIONS.format('c1')}/{created['id']}", 404)


async def test_only_the_owner_or_a_writer_manages_subscriptions(hooks):
    await hooks.grant("c1", "reader", ["read"])
    await hooks.grant("c1", "writer", ["read", "write"])
    refused = await subscribe(hooks.as_("reader"), "http://127.0.0.1:9/hook", expect=403)
    assert "write grant" in refused["status"]["message"]
    await hooks.call("GET", SUBSCRIPTIONS.format("c1"), 403, headers=hooks.as_("reader").headers)
    await subscribe(hooks.as_("stranger"), "http://127.0.0.1:9/hook", expect=403)
    created = await subscribe(hooks.as_("writer"), "http://127.0.0.1:9/hook")
    assert created["createdBy"] == "writer"
    await subscribe(hooks, "http://127.0.0.1:9/hook", collection="unregistered", expect=403)


async def test_bad_subscriptions_are_refused_with_the_reason(hooks):
    for body, where in (({"url": "http://127.0.0.1:9/hook", "secret": "short"}, "/secret"),
                        ({"url": "http://127.0.0.1:9/hook", "secret": SECRET, "filters": {"kinds": ["nope"]}},
                         "/filters/kinds/0"),
                        ({"secret": SECRET}, "")):
        refused = await hooks.call("POST", SUBSCRIPTIONS.format("c1"), 400, json_body=body)
        assert any(error["path"] == where for error in refused["errors"]), refused
    unknown = await subscribe(hooks, "http://127.0.0.1:9/hook", expect=400, filters={"types": ["BRICK_0_4__Nope"]})
    assert unknown["errors"][0]["path"] == "/filters/types/0"
    for url, message in (("ftp://127.0.0.1/hook", "http:// or https://"), ("/hook", "http:// or https://"),
                         ("http://user:pw@127.0.0.1:9/hook", "credentials")):
        refused = await subscribe(hooks, url, expect=400)
        assert message in refused["status"]["message"]
    beyond = await subscribe(hooks, "http://127.0.0.1:9/hook", expect=400, startAfter=10**6)
    assert "startAfter" in beyond["status"]["message"]


async def test_a_target_outside_the_allow_list_is_refused_at_subscription_time(hooks, app_factory):
    for url in ("http://10.1.2.3/hook", "http://[::1]:8080/hook", "http://127.0.0.2/hook",
                "http://[::ffff:10.1.2.3]/hook"):
        refused = await subscribe(hooks, url, expect=403)
        assert "allow-list" in refused["status"]["message"] and refused["errors"][0]["path"] == "/url"
    assert (await subscribe(hooks, "http://localhost:9/hook"))["url"] == "http://localhost:9/hook"  # resolves there
    default = await app_factory()  # the operator allowed nothing: not even loopback (same storage, another c)
    await default.register("c2")
    refused = await subscribe(default, "http://127.0.0.1:9/hook", collection="c2", expect=403)
    assert "webhooks.allowed_targets" in refused["status"]["message"]
    listed = await default.call("GET", SUBSCRIPTIONS.format("c2"), 200, schema="subscription-list")
    assert listed["data"] == []


async def test_a_collection_holds_at_most_the_configured_number_of_subscriptions(app_factory):
    api = await app_factory(webhooks={**LOOPBACK, "max_per_collection": 2})
    await api.register("c1")
    for _ in range(2):
        await subscribe(api, "http://127.0.0.1:9/hook")
    refused = await subscribe(api, "http://127.0.0.1:9/hook", expect=409)
    assert "webhooks.max_per_collection" in refused["status"]["message"]


# ---- deliveries -----------------------------------------------------------------------------------------------


async def test_a_receiver_failing_three_times_gets_every_change_once_in_order_signed(hooks):
    before = await scrape(hooks)
    async with Receiver(fail_first=3) as receiver:
        created = await subscribe(hooks, receiver.url)
        await hooks.entities("c1", [entity(f"n{i}") for i in range(4)])
        await hooks.relationships("c1", [relationship(f"r{i}", f"n{i}", f"n{i + 1}") for i in range(3)])
        await hooks.entities("c1", entity("n0", entityName="renamed"))
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock)
        try:
            await run_until(worker, clock, lambda: len(receiver.accepted) == 8)
        finally:
            await worker.stop(1)
    assert receiver.bad_signatures == 0
    sequences = receiver.sequences()
    assert sequences == sorted(set(sequences)) and len(sequences) == 8  # each once, in order
    assert sequences[0] == created["lastDeliveredSequence"] + 1
    ids = [(d["change"]["kind"], d["change"]["id"]) for d in receiver.accepted]
    assert ids == [*(("entity", f"n{i}") for i in range(4)), *(("relationship", f"r{i}") for i in range(3)),
                   ("entity", "n0")]
    assert receiver.accepted[-1]["change"]["document"]["entityName"] == "renamed"
    # the first change was tried 4 times: three 500s, then accepted; every attempt carried its number
    assert [d["attempt"] for d in receiver.received[:4]] == [1, 2, 3, 4]
    assert len({d["deliveryId"] for d in receiver.received[:4]}) == 1
    state = await subscription(hooks, created["id"])
    assert state["state"] == "active" and state["lastDeliveredSequence"] == sequences[-1]
    assert state["failures"] == {"count": 0, "since": None, "nextAttemptAt": None}
    assert [a["statusCode"] for a in state["attempts"]][-4:] == [200, 500, 500, 500]  # newest first
    assert state["attempts"][-1]["error"] == "the receiver answered 500"
    after = await scrape(hooks)
    assert moved(before, after, "erapi_webhook_attempts_total", outcome="failed") == 3
    assert moved(before, after, "erapi_webhook_attempts_total", outcome="delivered") == 8


async def test_backoff_grows_between_attempts_of_one_change(hooks):
    async with Receiver(fail_first=100) as receiver:
        created = await subscribe(hooks, receiver.url)
        await hooks.entities("c1", entity("n1"))
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock, retry_initial_seconds=2.0, retry_multiplier=3.0,
                                 retry_max_seconds=20.0, pause_after_attempts=100, lease_seconds=300.0)
        try:
            [delivery] = await worker.claim()
            waits = []
            for _ in range(4):
                assert await delivery.step() is not None
                state = await subscription(hooks, created["id"])
                waits.append(_seconds_between(state["attempts"][0]["at"], state["failures"]["nextAttemptAt"]))
                early = await delivery.step()  # before the next attempt is due: nothing is sent
                assert 0 < early <= waits[-1] and len(receiver.received) == len(waits)
                clock.advance(waits[-1])
        finally:
            await worker.stop(1)
    assert waits == pytest.approx([2.0, 6.0, 18.0, 20.0])


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def test_a_receiver_that_never_answers_is_paused_and_its_state_says_why(hooks):
    before = await scrape(hooks)
    async with Receiver(hang=True) as receiver:
        created = await subscribe(hooks, receiver.url)
        await hooks.entities("c1", entity("n1"))
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock, timeout_seconds=0.2, pause_after_attempts=3)
        try:
            await run_until(worker, clock, lambda: False)
        finally:
            await worker.stop(1)
        assert len(receiver.received) == 3 and receiver.accepted == []
    state = await subscription(hooks, created["id"])
    assert state["state"] == "paused"
    assert state["pausedReason"].startswith("3 delivery attempts in a row failed")
    assert "no answer within 0.2 seconds" in state["pausedReason"]
    assert [(a["statusCode"], a["attempt"]) for a in state["attempts"]] == [(None, 3), (None, 2), (None, 1)]
    assert state["lastDeliveredSequence"] == created["lastDeliveredSequence"]  # nothing counted as delivered
    assert moved(before, await scrape(hooks), "erapi_webhook_pauses_total") == 1


async def test_a_paused_subscription_resumes_from_the_change_it_stopped_at(hooks):
    async with Receiver(fail_first=2) as receiver:
        created = await subscribe(hooks, receiver.url)
        await hooks.entities("c1", [entity("n1"), entity("n2")])
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock, pause_after_attempts=2)
        try:
            await run_until(worker, clock, lambda: False)
            paused = await subscription(hooks, created["id"])
            assert paused["state"] == "paused" and "the receiver answered 500" in paused["pausedReason"]
            assert await worker.claim() == []  # a paused subscription is nobody's to deliver
            resume = f"{SUBSCRIPTIONS.format('c1')}/{created['id']}/resume"
            resumed = (await hooks.call("POST", resume, 200, schema="subscription"))["data"]
            assert resumed["state"] == "active" and resumed["pausedReason"] is None
            assert resumed["failures"]["count"] == 0
            await run_until(worker, clock, lambda: len(receiver.accepted) == 2)
        finally:
            await worker.stop(1)
    assert [d["change"]["id"] for d in receiver.accepted] == ["n1", "n2"]


async def test_a_subscription_whose_creator_lost_read_access_is_paused(hooks):
    await hooks.grant("c1", "writer", ["read", "write"])
    async with Receiver() as receiver:
        created = await subscribe(hooks.as_("writer"), receiver.url)
        await hooks.grant("c1", "writer", [])
        await hooks.entities("c1", entity("n1"))
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock)
        try:
            await run_until(worker, clock, lambda: False)
        finally:
            await worker.stop(1)
        assert receiver.received == []
    state = await subscription(hooks, created["id"])
    assert state["state"] == "paused" and "writer no longer has read access" in state["pausedReason"]


async def test_a_subscription_behind_the_feeds_retention_is_paused_and_resumes_after_it(hooks):
    async with Receiver() as receiver:
        created = await subscribe(hooks, receiver.url)
        await hooks.entities("c1", [entity("n1"), entity("n2"), entity("n3")])
        whole_after = await hooks.client.app[storage_key].trim_changes("c1", datetime.now(timezone.utc)
                                                                       + timedelta(seconds=1))
        assert whole_after > created["lastDeliveredSequence"]  # everything but the newest change is gone
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock)
        try:
            await run_until(worker, clock, lambda: False)
            paused = await subscription(hooks, created["id"])
            assert paused["state"] == "paused" and receiver.received == []
            assert f"retention trimmed it up to {whole_after}" in paused["pausedReason"]
            resume = f"{SUBSCRIPTIONS.format('c1')}/{created['id']}/resume"
            resumed = (await hooks.call("POST", resume, 200, schema="subscription"))["data"]
            assert resumed["lastDeliveredSequence"] == whole_after
            await run_until(worker, clock, lambda: len(receiver.accepted) == 1)
        finally:
            await worker.stop(1)
    assert [d["change"]["id"] for d in receiver.accepted] == ["n3"]


async def test_filters_choose_the_changes_delivered(hooks):
    async with Receiver() as receiver:
        await subscribe(hooks, receiver.url, filters={"kinds": ["entity"], "types": ["BRICK_0_4__VAV"],
                                                      "operations": ["created"]})
        await hooks.entities("c1", [entity("ahu"), entity("vav", "BRICK_0_4__VAV")])
        await hooks.relationships("c1", relationship("r1", "e0", "e1"))
        await hooks.entities("c1", entity("vav", "BRICK_0_4__VAV", entityName="renamed"))  # updated: left out
        await hooks.entities("c1", entity("vav2", "BRICK_0_4__VAV"))
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock)
        try:
            await run_until(worker, clock, lambda: len(receiver.accepted) == 2)
        finally:
            await worker.stop(1)
    assert [d["change"]["id"] for d in receiver.accepted] == ["vav", "vav2"]


async def test_the_service_delivers_in_the_background(app_factory):
    api = await app_factory(webhooks={**LOOPBACK, "deliver": True, "poll_interval_seconds": 0.05})
    await api.register("c1")
    async with Receiver() as receiver:
        await subscribe(api, receiver.url)
        await api.entities("c1", [entity(f"e{i}") for i in range(3)])
        await receiver.wait_for(3)
    assert [d["change"]["id"] for d in receiver.accepted] == ["e0", "e1", "e2"]
    assert receiver.bad_signatures == 0


async def test_deliveries_go_only_where_the_allow_list_allows_now(hooks):
    """The allow-list applies to every delivery too: a subscription made under a wider list gets nothing through."""
    async with Receiver() as receiver:
        by_address = await subscribe(hooks, receiver.url)
        by_name = await subscribe(hooks, receiver.url.replace("127.0.0.1", "localhost"))
        await hooks.entities("c1", entity("n1"))
        clock = ManualClock(time.time())
        worker = stepping_worker(hooks, clock, allowed_targets=("10.0.0.0/8",), pause_after_attempts=1)
        try:
            await run_until(worker, clock, lambda: False)
        finally:
            await worker.stop(1)
        assert receiver.received == []
    refused_address = await subscription(hooks, by_address["id"])
    assert "no longer in the allow-list" in refused_address["pausedReason"]
    refused_name = await subscription(hooks, by_name["id"])
    assert "resolves to no address of the allow-list" in refused_name["pausedReason"]


# ---- the allow-list -------------------------------------------------------------------------------------------


async def test_the_allow_list_takes_names_subdomains_addresses_and_ranges():
    policy = TargetPolicy(("hooks.example.com", "*.example.org", "10.0.0.0/8", "2001:db8::1"))
    assert policy.permits_name("hooks.example.com") and policy.permits_name("HOOKS.example.com.")
    assert policy.permits_name("a.b.example.org") and not policy.permits_name("example.org")
    assert not policy.permits_name("evil-example.org") and not policy.permits_name("hooks.example.com.evil")
    for url in ("https://hooks.example.com/h", "http://a.example.org:8080/h", "http://10.9.8.7/h",
                "http://[2001:db8::1]/h", "http://[::ffff:10.1.1.1]/h"):
        assert (await policy.check(url)).path == "/h"
    for url in ("http://11.0.0.1/h", "http://[2001:db8::2]/h", "http://127.0.0.1/h"):
        with pytest.raises(TargetRefused) as refused:
            await policy.check(url)
        assert refused.value.status == 403


async def test_the_resolver_of_deliveries_keeps_only_allowed_addresses():
    only_v4 = AllowListResolver(TargetPolicy(("127.0.0.1",)))
    try:
        assert {result["host"] for result in await only_v4.resolve("localhost", 80, socket.AF_UNSPEC)} == {"127.0.0.1"}
    finally:
        await only_v4.close()
    nothing = AllowListResolver(TargetPolicy(()))
    try:
        with pytest.raises(OSError, match="allow-list"):
            await nothing.resolve("localhost", 80)
    finally:
        await nothing.close()


# ---- the worked consumer of docs/API.md -----------------------------------------------------------------------


def consumer_example() -> dict:
    """The receiver docs/API.md shows, executed as written."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "API.md").read_text(encoding="utf-8")
    code = text.split("<!-- webhook-consumer-example -->\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/API.md (webhook consumer)", "exec"), namespace)  # noqa: S102 (our own docs)
    return namespace


async def test_the_documented_consumer_verifies_dedupes_and_keeps_every_change(hooks, aiohttp_server):
    consumer = consumer_example()
    server = await aiohttp_server(consumer["app"], host="127.0.0.1")
    url = str(server.make_url("/erapi"))
    await hooks.call("POST", SUBSCRIPTIONS.format("c1"), 201, schema="subscription",
                     json_body={"url": url, "secret": consumer["SECRET"].decode()})
    await hooks.entities("c1", [entity("n1"), entity("n2")])
    clock = ManualClock(time.time())
    worker = stepping_worker(hooks, clock)
    try:
        await run_until(worker, clock, lambda: len(consumer["changes"]) == 2)
        assert await worker.claim() == []  # held under the first claim's lease: nobody claims it twice
    finally:
        await worker.stop(1)
    assert [change["id"] for change in consumer["changes"]] == ["n1", "n2"]
    sent = consumer["changes"][0]
    body = orjson.dumps({"deliveryId": "x:1", "sentAt": int(time.time()), "change": sent})
    async with aiohttp.ClientSession() as session:
        forged = {"X-Erapi-Signature-256": signature("not-the-secret-at-all", body)}
        async with session.post(url, data=body, headers=forged) as answer:
            assert answer.status == 401
        genuine = {"X-Erapi-Signature-256": signature(consumer["SECRET"].decode(), body)}
        for _ in range(2):  # the second is a duplicate: answered, not kept twice
            async with session.post(url, data=body, headers=genuine) as answer:
                assert answer.status == 204
    assert len(consumer["changes"]) == 3
