"""SubscriptionStore (storage_plugins/subscriptions.py): webhook subscriptions, their delivery state and leases."""

from __future__ import annotations

import asyncio

import pytest

from storage_plugins.base import DuplicateError


def subscription(subscription_id: str, collection: str = "c1", state: str = "active") -> dict:
    return {"id": subscription_id, "ercollectionid": collection, "url": "https://hooks.example.com/h",
            "secret": "s" * 16, "filters": {"kinds": ["entity"]}, "state": state, "lastDeliveredSequence": 0,
            "failures": {"count": 0, "since": None, "nextAttemptAt": None}, "attempts": []}


async def test_subscriptions_are_stored_listed_by_id_and_removed(storage):
    for subscription_id, collection in (("s2", "c1"), ("s1", "c1"), ("s1", "c2")):
        await storage.create_subscription(subscription(subscription_id, collection))
    with pytest.raises(DuplicateError):
        await storage.create_subscription(subscription("s1", "c1"))
    stored = await storage.get_subscription("c1", "s1")
    assert stored == {**subscription("s1"), "leaseOwner": None, "leaseExpiresAt": 0.0}
    assert [item["id"] for item in await storage.list_subscriptions("c1")] == ["s1", "s2"]
    assert await storage.list_subscriptions("c3") == []
    assert await storage.get_subscription("c3", "s1") is None
    assert await storage.delete_subscription("c1", "s1") is True
    assert await storage.delete_subscription("c1", "s1") is False
    assert await storage.get_subscription("c1", "s1") is None
    assert (await storage.get_subscription("c2", "s1"))["ercollectionid"] == "c2"  # another collection's s1 stays


async def test_a_subscription_is_claimed_by_one_worker_until_its_lease_expires(storage):
    await storage.create_subscription(subscription("s1"))
    await storage.create_subscription(subscription("paused", state="paused"))
    now = 1_800_000_000.0
    claimed = await storage.claim_subscription("w1", now, 10.0)
    assert claimed["id"] == "s1" and claimed["leaseOwner"] == "w1" and claimed["leaseExpiresAt"] == now + 10.0
    assert await storage.claim_subscription("w2", now + 9.0, 10.0) is None  # held; a paused one is never claimed
    taken = await storage.claim_subscription("w2", now + 10.0, 10.0)
    assert taken["leaseOwner"] == "w2"
    # the first worker's writes no longer land; the holder's do
    assert await storage.update_subscription("c1", "s1", {"lastDeliveredSequence": 7}, owner="w1") is False
    assert await storage.update_subscription("c1", "s1", {"lastDeliveredSequence": 5}, owner="w2") is True
    assert (await storage.get_subscription("c1", "s1"))["lastDeliveredSequence"] == 5
    # handing the lease back makes it claimable at once
    assert await storage.update_subscription("c1", "s1", {"leaseOwner": None, "leaseExpiresAt": 0.0}, owner="w2")
    assert (await storage.claim_subscription("w3", now + 11.0, 10.0))["leaseOwner"] == "w3"


async def test_an_update_without_owner_changes_any_subscription_but_never_its_key(storage):
    await storage.create_subscription(subscription("s1"))
    assert await storage.update_subscription("c1", "s1", {"state": "paused", "id": "other",
                                                          "ercollectionid": "c9", "attempts": [{"n": 1}]}) is True
    stored = await storage.get_subscription("c1", "s1")
    assert (stored["id"], stored["ercollectionid"], stored["state"], stored["attempts"]) == ("s1", "c1", "paused",
                                                                                          [{"n": 1}])
    assert await storage.update_subscription("c1", "absent", {"state": "active"}) is False
    assert await storage.update_subscription("c1", "s1", {"state": "active"}, owner="nobody") is False
    stored["attempts"].append("mutated")  # a copy: the caller's changes stay out of storage
    assert (await storage.get_subscription("c1", "s1"))["attempts"] == [{"n": 1}]


async def test_concurrent_claims_take_each_subscription_once(storage):
    for n in range(4):
        await storage.create_subscription(subscription(f"s{n}"))
    now = 1_800_000_000.0
    claims = await asyncio.gather(*(storage.claim_subscription(f"w{n}", now, 30.0) for n in range(8)))
    assert sorted(claim["id"] for claim in claims if claim is not None) == ["s0", "s1", "s2", "s3"]
