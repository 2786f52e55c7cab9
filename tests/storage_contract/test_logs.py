"""LogStore (storage_plugins/logs.py): the status records of transactions."""

from __future__ import annotations

import copy
import random
import uuid
from datetime import datetime, timezone

import pytest

from storage_plugins.base import DuplicateError, LogMoves, LogQuery, LogTransition
from tests.storage_contract.helpers import at, ordered, status_record


# ---- status records ----------------------------------------------------------------------------------------


async def test_insert_logs_of_no_records_is_a_no_op(storage):
    await storage.insert_logs([])
    assert await storage.find_logs(LogQuery(collection_id="c1")) == []
    assert await storage.count_logs(LogQuery(collection_id="c1")) == 0


async def test_status_records_come_back_exactly_as_stored(storage):
    records = [status_record(received=at(1)), status_record(received=at(0), entity_id="e1", relationship_id=None)]
    await storage.insert_logs(copy.deepcopy(records))
    assert await storage.find_logs(LogQuery(collection_id="c1")) == ordered(records)


async def test_insert_logs_duplicate_id_raises_and_still_writes_the_others(storage):
    existing = status_record("dup-1", received=at(0))
    await storage.insert_logs([existing])
    fresh = [status_record(received=at(1)), status_record(received=at(2))]
    with pytest.raises(DuplicateError):
        await storage.insert_logs([fresh[0], status_record("dup-1", transaction="t2", received=at(5)), fresh[1]])
    assert await storage.find_logs(LogQuery(collection_id="c1")) == ordered([existing, *fresh])
    assert await storage.find_logs(LogQuery(collection_id="c1", transaction_id="t2")) == []


async def test_find_logs_applies_each_filter(storage):
    records = {
        "r1": status_record(transaction="t1", correlation="k1", relationship_id="r1", received=at(0)),
        "r2": status_record(transaction="t1", correlation="k2", relationship_id="r2", received=at(1)),
        "e1": status_record(transaction="t2", correlation="k1", relationship_id=None, entity_id="e1",
                            received=at(2)),
        "e2": status_record(transaction="t3", correlation=None, relationship_id=None, entity_id="e2",
                            received=at(3)),
    }
    await storage.insert_logs(list(records.values()))

    async def found(**filters) -> list[dict]:
        return await storage.find_logs(LogQuery(collection_id="c1", **filters))

    assert await found(transaction_id="t1") == [records["r1"], records["r2"]]
    assert await found(correlation_id="k1") == [records["r1"], records["e1"]]
    assert await found(relationship_id="r2") == [records["r2"]]
    assert await found(entity_id="e2") == [records["e2"]]
    assert await found(transaction_id="t1", correlation_id="k2") == [records["r2"]]
    assert await found(transaction_id="t1", entity_id="e1") == []
    assert await found(transaction_id="unknown") == []
    assert await found() == list(records.values())
    assert await storage.count_logs(LogQuery(collection_id="c1", transaction_id="t1")) == 2
    assert await storage.count_logs(LogQuery(collection_id="c1", correlation_id="k1")) == 2
    assert await storage.count_logs(LogQuery(collection_id="c1", entity_id="e1")) == 1


async def test_find_logs_by_state_narrows_the_other_filters(storage):
    records = [status_record(f"i{n}", transaction="t1", received=at(0)) for n in range(4)]
    records[1]["state"] = records[3]["state"] = "Failed"
    other = status_record("j", transaction="t2", received=at(1))
    other["state"] = "Failed"
    await storage.insert_logs([*records, other])
    failed = LogQuery(collection_id="c1", transaction_id="t1", state="Failed")
    assert await storage.find_logs(failed) == [records[1], records[3]]
    assert await storage.count_logs(failed) == 2
    assert await storage.find_logs(LogQuery(**{**failed.__dict__, "limit": 1, "after": (at(0), "i1")})) == [records[3]]
    assert await storage.find_logs(LogQuery(collection_id="c1", state="Failed")) == [records[1], records[3], other]
    await storage.transition_logs("c1", [LogTransition("i0", "Failed", "gave up", datetime.now(timezone.utc),
                                                       from_states=("Completed",))])
    assert [record["id"] for record in await storage.find_logs(failed)] == ["i0", "i1", "i3"]
    assert await storage.count_logs(LogQuery(collection_id="c1", transaction_id="t1", state="Completed")) == 1


async def test_find_logs_time_bounds_are_inclusive(storage):
    records = [status_record(received=at(minute)) for minute in range(5)]
    await storage.insert_logs(records)
    query = LogQuery(collection_id="c1", start_time=at(1), end_time=at(3))
    assert await storage.find_logs(query) == records[1:4]
    assert await storage.count_logs(query) == 3
    assert await storage.find_logs(LogQuery(collection_id="c1", start_time=at(4))) == records[4:]
    assert await storage.find_logs(LogQuery(collection_id="c1", end_time=at(0))) == records[:1]
    assert await storage.find_logs(LogQuery(collection_id="c1", start_time=at(3), end_time=at(3))) == [records[3]]
    assert await storage.find_logs(LogQuery(collection_id="c1", start_time=at(5))) == []


async def test_find_logs_pages_in_timestamp_then_id_order(storage):
    # several records share a timestamp, so the id decides their order; inserted shuffled
    records = [status_record(f"{n:02d}-{uuid.uuid4()}", received=at(n // 3)) for n in range(10)]
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    await storage.insert_logs(shuffled)
    pages, after = [], None
    while True:
        page = await storage.find_logs(LogQuery(collection_id="c1", after=after, limit=4))
        if not page:
            break
        pages.append(page)
        after = (page[-1]["receivedTimestamp"], page[-1]["id"])
    assert [len(page) for page in pages] == [4, 4, 2]
    assert [record for page in pages for record in page] == ordered(records)
    assert await storage.find_logs(LogQuery(collection_id="c1", limit=3)) == ordered(records)[:3]
    # count ignores paging
    assert await storage.count_logs(LogQuery(collection_id="c1", after=after, limit=1)) == 10


async def test_find_logs_paging_combines_with_filters_and_time_bounds(storage):
    records = [status_record(transaction="t1" if n % 2 else "t2", received=at(n)) for n in range(8)]
    await storage.insert_logs(records)
    wanted = [r for r in records if r["transactionId"] == "t1" and at(2) <= r["receivedTimestamp"] <= at(6)]
    first = await storage.find_logs(
        LogQuery(collection_id="c1", transaction_id="t1", start_time=at(2), end_time=at(6), limit=1)
    )
    assert first == wanted[:1]
    rest = await storage.find_logs(
        LogQuery(collection_id="c1", transaction_id="t1", start_time=at(2), end_time=at(6),
                 after=(first[0]["receivedTimestamp"], first[0]["id"]))
    )
    assert rest == wanted[1:]
    # an ``after`` before start_time does not widen the window
    early = await storage.find_logs(
        LogQuery(collection_id="c1", start_time=at(5), after=(at(1), records[1]["id"]))
    )
    assert early == records[5:]


async def test_status_records_are_isolated_per_collection_and_from_acl_records(storage):
    mine = status_record(collection="c1", transaction="t1")
    theirs = status_record(collection="c2", transaction="t1")
    await storage.insert_logs([mine, theirs])
    await storage.register_collection({"collectionId": "c1", "collectionName": "one", "owner": "alice"})
    await storage.put_grant("c1", "alice", {"collectionId": "c1", "principal": "alice", "access": ["read"]})
    assert await storage.find_logs(LogQuery(collection_id="c1")) == [mine]
    assert await storage.find_logs(LogQuery(collection_id="c2", transaction_id="t1")) == [theirs]
    assert await storage.find_logs(LogQuery(collection_id="c3")) == []
    assert await storage.count_logs(LogQuery(collection_id="c1")) == 1


async def test_returned_status_records_are_copies(storage):
    record = status_record()
    await storage.insert_logs([record])
    record["serviceData"]["relationshipId"] = "changed by the caller after the call"
    found = await storage.find_logs(LogQuery(collection_id="c1"))
    found[0]["stateHistory"].clear()
    found[0]["serviceData"]["erCollectionId"] = "changed"
    assert await storage.find_logs(LogQuery(collection_id="c1")) == [status_record(record["id"])]


async def test_transition_logs_moves_only_records_in_an_allowed_state(storage):
    requested = status_record("a", received=at(0))
    requested["state"] = "Requested"
    processing = status_record("b", received=at(1))
    processing["state"] = "Processing"
    done = status_record("c", received=at(2))  # Completed: final
    elsewhere = status_record("d", collection="c2", received=at(3))
    elsewhere["state"] = "Requested"
    await storage.insert_logs([requested, processing, done, elsewhere])
    when = datetime(2026, 11, 27, 5, 30, tzinfo=timezone.utc)
    transitions = [
        LogTransition(record_id=record_id, state="Completed", message="applied", at=when)
        for record_id in ("a", "b", "c", "d", "missing")
    ]
    assert await storage.transition_logs("c1", transitions) == 2
    assert await storage.transition_logs("c1", transitions) == 0  # applying it again changes nothing
    assert await storage.transition_logs("c1", []) == 0
    found = {r["id"]: r for r in await storage.find_logs(LogQuery(collection_id="c1"))}
    for record_id, before in (("a", requested), ("b", processing)):
        assert found[record_id]["state"] == "Completed" and found[record_id]["message"] == "applied"
        assert found[record_id]["stateHistory"] == [*before["stateHistory"], transitions[0].history_entry()]
    assert found["c"] == done
    assert (await storage.find_logs(LogQuery(collection_id="c2")))[0]["state"] == "Requested"


async def test_transition_logs_of_a_large_batch(storage):
    records = []
    for n in range(150):
        record = status_record(f"r{n:03d}", received=at(n % 60))
        record["state"] = "Processing"
        records.append(record)
    await storage.insert_logs(records)
    when = datetime(2026, 11, 27, 5, 30, tzinfo=timezone.utc)
    moved = await storage.transition_logs(
        "c1", [LogTransition(record_id=r["id"], state="Failed", message="no", at=when) for r in records]
    )
    assert moved == 150
    assert await storage.count_log_states("c1", ["t1"]) == {"t1": {"Failed": 150}}


async def test_transition_logs_of_a_chunk_moves_each_record_forward_only(storage):
    # what the job worker sends for a chunk: many records in one call, to several states with several messages,
    # some of them already further on; a record never goes back to an earlier state
    states = {"q0": "Requested", "q1": "Requested", "p0": "Processing", "p1": "Processing", "c0": "Completed",
              "f0": "Failed"}
    records = []
    for n, (record_id, state) in enumerate(states.items()):
        record = status_record(record_id, received=at(n))
        record["state"] = state
        records.append(record)
    await storage.insert_logs(records)
    first, then = (datetime(2026, 11, 27, 5, 30, second, tzinfo=timezone.utc) for second in (0, 1))
    to_processing = [LogTransition(record_id, "Processing", "Processing", first, from_states=("Requested",))
                     for record_id in states]
    assert await storage.transition_logs("c1", to_processing) == 2  # q0, q1; never p*, c0, f0 again or back
    finishing = [LogTransition("q0", "Completed", "written", then), LogTransition("q1", "Failed", "bad q1", then),
                 LogTransition("p0", "Failed", "bad p0", then), LogTransition("p1", "Completed", "written", then),
                 LogTransition("c0", "Failed", "too late", then), LogTransition("f0", "Completed", "too late", then)]
    assert await storage.transition_logs("c1", finishing) == 4
    found = {record["id"]: record for record in await storage.find_logs(LogQuery(collection_id="c1"))}
    assert {record_id: (found[record_id]["state"], found[record_id]["message"]) for record_id in states} == {
        "q0": ("Completed", "written"), "q1": ("Failed", "bad q1"), "p0": ("Failed", "bad p0"),
        "p1": ("Completed", "written"), "c0": ("Completed", records[4]["message"]),
        "f0": ("Failed", records[5]["message"])}
    assert [entry["state"] for entry in found["q1"]["stateHistory"]] == [
        *(entry["state"] for entry in records[1]["stateHistory"]), "Processing", "Failed"]
    assert found["q1"]["stateHistory"][-1] == finishing[1].history_entry()


def _job_records(collection: str) -> list[dict]:
    """A job's records as a worker finds them: its own record, then its items (one taken further already), one
    batch; and an item record of the same transaction received later, in a batch of its own."""
    job = {**status_record("t1", collection=collection, relationship_id=None), "requestObject": "Job",
           "state": "Requested"}
    items = [{**status_record(f"t1.{n:05d}", collection=collection), "state": "Requested"} for n in range(8)]
    items[3]["state"] = "Processing"
    later = {**status_record("t1.00008", collection=collection, received=at(1)), "state": "Requested"}
    return [job, *items, later]


@pytest.mark.parametrize("record_ids", [
    ["t1", "t1.00000", "t1.00001", "t1.00002", "t1.00003"],  # the first chunk, with the job's record
    ["t1", "t1.00005", "t1.00006", "t1.00007"],  # a later chunk: the job's record moved already
    ["t1.00007", "t1.00001", "missing", "t1.00008"],  # not in order, one absent, one in another batch
    ["t1.00002", "t1.00002"],  # named twice
])
async def test_log_moves_move_records_as_their_transitions_would(storage, record_ids):
    # LogMoves is a sequence of LogTransitions, which a plugin may apply a column at a time: same outcome
    await storage.insert_logs(_job_records("c1") + _job_records("c2"))
    first, then = (datetime(2026, 11, 27, 5, 30, second, tzinfo=timezone.utc) for second in (0, 1))
    starting = LogMoves(record_ids, ["Processing"] * len(record_ids), [f"on {r}" for r in record_ids], first,
                        from_states=("Requested",))
    finishing = LogMoves(record_ids, ["Failed" if r.endswith("2") else "Completed" for r in record_ids],
                         ["done"] * len(record_ids), then)
    for moves in (starting, finishing):
        moved = await storage.transition_logs("c1", moves)
        assert moved == await storage.transition_logs("c2", list(moves))
    found = [await storage.find_logs(LogQuery(collection_id=collection)) for collection in ("c1", "c2")]
    for record in found[0]:
        record["serviceData"]["erCollectionId"] = "c2"
    assert found[0] == found[1]
    assert (await storage.count_log_states("c1", ["t1"])) == (await storage.count_log_states("c2", ["t1"]))


def test_log_moves_read_as_transitions():
    when = datetime(2026, 11, 27, 5, 30, tzinfo=timezone.utc)
    moves = LogMoves(["a", "b"], ["Completed", "Failed"], ["done", "bad"], when)
    assert list(moves) == [LogTransition("a", "Completed", "done", when), LogTransition("b", "Failed", "bad", when)]
    assert moves[1:] == [LogTransition("b", "Failed", "bad", when)]
    with pytest.raises(ValueError, match="one state and one message per record id"):
        LogMoves(["a"], [], ["done"], when)


async def test_transition_logs_moves_a_record_named_twice_in_the_order_given(storage):
    record = status_record("a", received=at(0))
    record["state"] = "Requested"
    await storage.insert_logs([record, {**status_record("b", received=at(1)), "state": "Requested"}])
    when = datetime(2026, 11, 27, 5, 30, tzinfo=timezone.utc)
    transitions = [LogTransition("b", "Completed", "done", when),
                   LogTransition("a", "Processing", "working", when, from_states=("Requested",)),
                   LogTransition("a", "Completed", "done", when),
                   LogTransition("a", "Processing", "working", when, from_states=("Requested",))]
    assert await storage.transition_logs("c1", transitions) == 3
    found = (await storage.find_logs(LogQuery(collection_id="c1", limit=1)))[0]
    assert (found["state"], found["message"]) == ("Completed", "done")
    assert [entry["state"] for entry in found["stateHistory"][-2:]] == ["Processing", "Completed"]


async def test_count_log_states_counts_items_of_one_transaction(storage):
    records = [status_record(transaction="t1", received=at(n)) for n in range(3)]
    records[0]["state"] = "Requested"
    job = status_record(transaction="t1", relationship_id=None, received=at(4))
    job["requestObject"] = "Job"
    other = status_record(transaction="t2", received=at(5))
    await storage.insert_logs([*records, job, other])
    assert await storage.count_log_states("c1", ["t1"]) == {"t1": {"Requested": 1, "Completed": 2}}
    assert await storage.count_log_states("c2", ["t1"]) == {}
    assert await storage.count_log_states("c1", ["unknown"]) == {}


async def test_count_log_states_counts_many_transactions_in_one_call(storage):
    records = [status_record(f"a{n}", transaction="t1", received=at(n)) for n in range(3)]
    records += [status_record(f"b{n}", transaction="t2", received=at(n)) for n in range(2)]
    records[0]["state"] = "Requested"
    records[3]["state"] = "Failed"
    elsewhere = status_record("c0", collection="c2", transaction="t3", received=at(9))
    await storage.insert_logs([*records, elsewhere])
    assert await storage.count_log_states("c1", ["t1", "t2", "t3", "unknown", "t1"]) == {
        "t1": {"Requested": 1, "Completed": 2},
        "t2": {"Failed": 1, "Completed": 1},
    }
    assert await storage.count_log_states("c2", ["t3"]) == {"t3": {"Completed": 1}}
    assert await storage.count_log_states("c1", []) == {}


async def test_a_transaction_of_many_records_pages_moves_and_counts_across_its_whole_batch(storage):
    # one request's 250 records at one moment, inserted with another transaction's records of the same moment
    # whose ids interleave with them: pages, filters, moves and counts see every record exactly once
    mine = [status_record(f"m{n:03d}", transaction="t1", entity_id=f"e{n % 7}", relationship_id=None,
                          received=at(0)) for n in range(250)]
    for record in mine:
        record["state"] = "Requested"
    theirs = [status_record(f"m{n:03d}x", transaction="t2", received=at(0)) for n in range(0, 250, 50)]
    await storage.insert_logs(mine)
    await storage.insert_logs(theirs)
    every = ordered([*mine, *theirs])
    pages, after = [], None
    while page := await storage.find_logs(LogQuery(collection_id="c1", after=after, limit=37)):
        pages.extend(page)
        after = (page[-1]["receivedTimestamp"], page[-1]["id"])
    assert pages == every
    sixes = LogQuery(collection_id="c1", entity_id="e6", limit=1000)
    assert await storage.find_logs(sixes) == [r for r in mine if r["serviceData"]["entityId"] == "e6"]
    assert await storage.count_logs(sixes) == 35
    when = datetime(2026, 11, 27, 5, 30, tzinfo=timezone.utc)
    moving = [LogTransition(r["id"], "Completed", "written", when) for r in mine[95:205]]
    assert await storage.transition_logs("c1", moving) == 110
    assert await storage.count_log_states("c1", ["t1", "t2"]) == {
        "t1": {"Requested": 140, "Completed": 110}, "t2": {"Completed": 5}}
    done = await storage.find_logs(LogQuery(collection_id="c1", transaction_id="t1", state="Completed", limit=500))
    assert [r["id"] for r in done] == [r["id"] for r in mine[95:205]]
    assert done[0]["stateHistory"] == [*mine[95]["stateHistory"], moving[0].history_entry()]
    assert await storage.count_logs(LogQuery(collection_id="c1", transaction_id="t1")) == 250
