"""JobQueue (storage_plugins/jobs.py): the chunks of async jobs and the idempotency keys of requests."""

from __future__ import annotations

import asyncio
import time

import pytest

from storage_plugins.base import IDEMPOTENCY_SWEEP_EVERY, DuplicateError
from tests.storage_contract.helpers import at


# ---- job queue ---------------------------------------------------------------------------------------------


def chunk(chunk_id: str, collection: str = "c1", items: int = 10, created: str = at(0)) -> dict:
    return {"id": chunk_id, "ercollectionid": collection, "itemCount": items, "createdAt": created,
            "transactionId": "t1", "items": [{"id": f"{chunk_id}-{n}"} for n in range(2)]}


async def test_chunks_are_claimed_oldest_first_and_returned_in_their_new_state(storage):
    await storage.enqueue_chunks([])
    await storage.enqueue_chunks([chunk("k1", created=at(1)), chunk("k2", created=at(2))])
    await storage.enqueue_chunks([chunk("k3", created=at(3))])
    now = 1_800_000_000.0
    first = await storage.claim_chunk("w1", now, 30.0)
    assert first == {**chunk("k1", created=at(1)), "state": "processing", "attempts": 1, "leaseOwner": "w1",
                     "leaseExpiresAt": now + 30.0}
    assert (await storage.claim_chunk("w2", now, 30.0))["id"] == "k2"
    assert (await storage.claim_chunk("w3", now, 30.0))["id"] == "k3"
    assert await storage.claim_chunk("w4", now, 30.0) is None


async def test_enqueue_of_an_existing_chunk_id_is_a_duplicate(storage):
    await storage.enqueue_chunks([chunk("k1")])
    with pytest.raises(DuplicateError):
        await storage.enqueue_chunks([chunk("k1", items=99)])
    assert await storage.pending_items(None) == 10


async def test_an_expired_lease_lets_another_worker_take_the_chunk(storage):
    await storage.enqueue_chunks([chunk("k1")])
    now = 1_800_000_000.0
    await storage.claim_chunk("w1", now, 5.0)
    assert await storage.claim_chunk("w2", now + 4.0, 5.0) is None
    taken = await storage.claim_chunk("w2", now + 5.0, 5.0)
    assert taken["leaseOwner"] == "w2" and taken["attempts"] == 2
    # the first worker owns it no longer
    assert await storage.renew_chunk("k1", "w1", now + 100) is False
    assert await storage.finish_chunk("k1", "w1", "done") is False
    assert await storage.release_chunk("k1", "w1") is False
    assert await storage.renew_chunk("k1", "w2", now + 100) is True
    assert await storage.claim_chunk("w3", now + 50, 5.0) is None  # renewed


async def test_release_hands_the_chunk_back_and_finish_ends_it(storage):
    await storage.enqueue_chunks([chunk("k1", items=7), chunk("k2", collection="c2", items=5, created=at(1))])
    now = 1_800_000_000.0
    assert await storage.pending_items(None) == 12
    assert await storage.pending_items("c1") == 7
    assert await storage.pending_items("c3") == 0
    claimed = await storage.claim_chunk("w1", now, 30.0)
    assert await storage.pending_items("c1") == 7  # processing still counts
    assert await storage.release_chunk(claimed["id"], "w1") is True
    again = await storage.claim_chunk("w2", now, 30.0)
    assert again["id"] == "k1" and again["attempts"] == 1  # the released attempt was undone
    assert await storage.finish_chunk("k1", "w2", "done") is True
    assert await storage.finish_chunk("k1", "w2", "done") is False
    assert await storage.pending_items("c1") == 0 and await storage.pending_items(None) == 5
    failed = await storage.claim_chunk("w2", now, 30.0)
    assert await storage.finish_chunk(failed["id"], "w2", "failed") is True
    assert await storage.pending_items(None) == 0
    assert await storage.claim_chunk("w3", now + 1000, 30.0) is None


async def test_concurrent_workers_never_hold_the_same_chunk(storage):
    await storage.enqueue_chunks([chunk(f"k{n}", created=at(n)) for n in range(5)])
    now = 1_800_000_000.0
    claims = await asyncio.gather(*(storage.claim_chunk(f"w{n}", now, 30.0) for n in range(12)))
    taken = [claim["id"] for claim in claims if claim is not None]
    assert sorted(taken) == [f"k{n}" for n in range(5)]


# ---- idempotency keys ----------------------------------------------------------------------------------------


def key_record(key_id: str, owner: str, expires_in: float = 3600.0, **fields) -> dict:
    return {"id": key_id, "owner": owner, "expiresAt": time.time() + expires_in, "state": "running", **fields}


async def test_the_first_claim_of_a_key_stores_it_and_later_claims_get_the_holder(storage):
    assert await storage.claim_idempotency_key(key_record("k1", "first", fingerprint="f")) is None
    held = await storage.claim_idempotency_key(key_record("k1", "second", fingerprint="g"))
    assert (held["owner"], held["fingerprint"], held["id"]) == ("first", "f", "k1")
    assert (await storage.get_idempotency_key("k1"))["owner"] == "first"
    assert await storage.get_idempotency_key("k2") is None
    assert await storage.claim_idempotency_key(key_record("k2", "other")) is None  # ids are independent


async def test_only_the_holder_finishes_or_releases_a_key(storage):
    await storage.claim_idempotency_key(key_record("k", "me"))
    answer = {"state": "done", "answer": {"status": 207, "body": '{"a": [1, 2]}', "headers": {"ETag": '"1"'}}}
    assert not await storage.finish_idempotency_key("k", "someone else", answer)
    assert (await storage.get_idempotency_key("k"))["state"] == "running"
    assert await storage.finish_idempotency_key("k", "me", answer)
    stored = await storage.get_idempotency_key("k")
    assert (stored["state"], stored["answer"], stored["owner"]) == ("done", answer["answer"], "me")
    assert not await storage.release_idempotency_key("k", "someone else")
    assert await storage.release_idempotency_key("k", "me")
    assert await storage.get_idempotency_key("k") is None
    assert not await storage.finish_idempotency_key("k", "me", answer)
    assert await storage.claim_idempotency_key(key_record("k", "next")) is None


async def test_removing_expired_keys_keeps_the_others_and_claims_sweep_now_and_then(storage):
    now = time.time()
    await storage.insert_idempotency_key(key_record("old", "a", expires_in=-10.0))
    await storage.insert_idempotency_key(key_record("live", "b"))
    await storage.remove_expired_idempotency_keys(now)
    assert await storage.get_idempotency_key("old") is None
    assert (await storage.get_idempotency_key("live"))["owner"] == "b"
    await storage.insert_idempotency_key(key_record("old", "a", expires_in=-10.0))
    for n in range(IDEMPOTENCY_SWEEP_EVERY):  # one of these claims removes the expired record first
        assert await storage.claim_idempotency_key(key_record(f"k{n}", "c")) is None
    assert await storage.get_idempotency_key("old") is None


async def test_of_concurrent_claims_of_one_key_exactly_one_stores_it(storage):
    results = await asyncio.gather(*(storage.claim_idempotency_key(key_record("race", f"owner-{n}"))
                                     for n in range(20)))
    winners = [n for n, held in enumerate(results) if held is None]
    assert len(winners) == 1
    assert {held["owner"] for held in results if held is not None} == {f"owner-{winners[0]}"}


async def test_idempotency_records_are_copies(storage):
    record = key_record("k", "me", answer={"headers": {"a": "b"}})
    await storage.claim_idempotency_key(record)
    record["answer"]["headers"]["a"] = "changed"
    read = await storage.get_idempotency_key("k")
    read["answer"]["headers"]["a"] = "changed again"
    assert (await storage.get_idempotency_key("k"))["answer"] == {"headers": {"a": "b"}}
