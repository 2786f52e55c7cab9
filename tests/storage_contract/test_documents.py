"""DocumentStore (storage_plugins/documents.py): versioned documents, their history, lists and edges, atomic batches;
and the lifecycle every plugin shares."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import replace

import pytest

from storage_plugins.base import (
    AtomicConflict,
    TYPE_FIELD,
    VERSION_FIELD,
    ClaimResult,
    DocumentQuery,
    EdgeQuery,
    FrontierQuery,
    StorageError,
)
from tests.storage_contract.helpers import RELATIONSHIP_TYPE, doc, entity, relationship, store


# ---- lifecycle -----------------------------------------------------------------------------------------------


async def test_ping_answers(storage):
    assert await storage.ping() is None


# ---- current view ------------------------------------------------------------------------------------------


async def test_get_current_of_no_ids_is_empty(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1))
    assert await storage.get_current(kind, "c1", []) == {}


async def test_get_current_omits_missing_ids(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1), doc(kind, "b", 1))
    found = await storage.get_current(kind, "c1", ["a", "missing", "b"])
    assert found == {"a": doc(kind, "a", 1), "b": doc(kind, "b", 1)}
    assert await storage.get_current(kind, "c1", ["missing"]) == {}
    assert await storage.get_current(kind, "never-used", ["a"]) == {}


async def test_get_current_accepts_any_iterable_and_repeated_ids(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1))
    assert await storage.get_current(kind, "c1", iter(["a", "a"])) == {"a": doc(kind, "a", 1)}


async def test_get_current_returns_inactive_documents(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1, isActive=False))
    assert (await storage.get_current(kind, "c1", ["a"]))["a"]["isActive"] is False


async def test_get_active_types_names_the_type_of_active_documents_only(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1), doc(kind, "b", 1, isActive=False),
                doc(kind, "c", 1, **{TYPE_FIELD[kind]: "Other_Type"}))
    assert await storage.get_active_types(kind, "c1", iter(["a", "b", "c", "a", "missing"])) == {
        "a": (doc(kind, "a", 1)[TYPE_FIELD[kind]],), "c": ("Other_Type",)}
    assert await storage.get_active_types(kind, "c1", []) == {}
    assert await storage.get_active_types(kind, "never-used", ["a"]) == {}


async def test_get_active_types_follows_the_current_version(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1))
    await store(storage, kind, "c1", doc(kind, "a", 2, isActive=False))
    assert await storage.get_active_types(kind, "c1", ["a"]) == {}
    await store(storage, kind, "c1", doc(kind, "a", 3, **{TYPE_FIELD[kind]: "Renamed"}))
    assert await storage.get_active_types(kind, "c1", ["a"]) == {"a": ("Renamed",)}


async def test_get_active_types_names_an_entitys_additional_types_after_its_type(storage):
    await store(storage, "entities", "c1", entity("a", 1, entityType="T1", additionalEntityTypes=["T3", "T2"]),
                entity("b", 1, entityType="T1", additionalEntityTypes=[]))
    assert await storage.get_active_types("entities", "c1", ["a", "b"]) == {"a": ("T1", "T3", "T2"), "b": ("T1",)}
    # a relationship's client property of that name is not a type
    await store(storage, "relationships", "c1", relationship("r", 1, additionalEntityTypes=["T3"]))
    assert await storage.get_active_types("relationships", "c1", ["r"]) == {"r": (RELATIONSHIP_TYPE,)}


async def test_put_current_of_no_documents_is_a_no_op(storage, kind):
    await storage.put_current(kind, "c1", [])
    assert await storage.get_current(kind, "c1", ["a"]) == {}


async def test_put_current_moves_forward_and_replaces_the_whole_document(storage, kind):
    await storage.put_current(kind, "c1", [doc(kind, "a", 1, note="first", extra={"x": 1})])
    await storage.put_current(kind, "c1", [doc(kind, "a", 2, note="second")])
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": doc(kind, "a", 2, note="second")}


async def test_put_current_never_moves_backwards(storage, kind):
    await storage.put_current(kind, "c1", [doc(kind, "a", 3, note="newest")])
    await storage.put_current(kind, "c1", [doc(kind, "a", 2, note="stale")])
    await storage.put_current(kind, "c1", [doc(kind, "a", 3, note="same version again")])
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": doc(kind, "a", 3, note="newest")}


async def test_put_current_with_stale_documents_in_a_batch_still_writes_the_others(storage, kind):
    await storage.put_current(kind, "c1", [doc(kind, "a", 2), doc(kind, "c", 1)])
    await storage.put_current(
        kind, "c1", [doc(kind, "a", 1, note="stale"), doc(kind, "b", 1), doc(kind, "c", 3), doc(kind, "a", 2)]
    )
    found = await storage.get_current(kind, "c1", ["a", "b", "c"])
    assert found == {"a": doc(kind, "a", 2), "b": doc(kind, "b", 1), "c": doc(kind, "c", 3)}


async def test_put_current_in_any_order_ends_at_the_highest_version(storage, kind):
    versions = list(range(1, 21))
    random.Random(7).shuffle(versions)
    await asyncio.gather(*(storage.put_current(kind, "c1", [doc(kind, "a", v)]) for v in versions))
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": doc(kind, "a", 20)}


async def test_large_batches_are_written_and_read_whole(storage, kind):
    documents = [doc(kind, f"id-{n:03d}", 1) for n in range(250)]
    claim = await storage.claim_versions(kind, "c1", documents)
    assert sorted(claim.claimed) == sorted(d["id"] for d in documents)
    await storage.put_current(kind, "c1", documents)
    found = await storage.get_current(kind, "c1", [d["id"] for d in documents])
    assert found == {d["id"]: d for d in documents}


# ---- history -----------------------------------------------------------------------------------------------


async def test_claim_of_no_documents_is_a_no_op(storage, kind):
    assert await storage.claim_versions(kind, "c1", []) == ClaimResult()
    assert await storage.get_versions(kind, "c1", "a") == []


async def test_claim_reports_claimed_and_conflicted_ids(storage, kind):
    first = await storage.claim_versions(kind, "c1", [doc(kind, "a", 1, note="winner"), doc(kind, "b", 1)])
    assert sorted(first.claimed) == ["a", "b"] and first.conflicted == []
    second = await storage.claim_versions(
        kind, "c1", [doc(kind, "a", 1, note="loser"), doc(kind, "b", 2), doc(kind, "c", 1)]
    )
    assert sorted(second.claimed) == ["b", "c"]
    assert second.conflicted == ["a"]
    assert await storage.get_versions(kind, "c1", "a") == [doc(kind, "a", 1, note="winner")]


async def test_claim_does_not_touch_the_current_view(storage, kind):
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 1)])
    assert await storage.get_current(kind, "c1", ["a"]) == {}


async def test_concurrent_claims_of_one_version_have_exactly_one_winner(storage, kind):
    results = await asyncio.gather(
        *(storage.claim_versions(kind, "c1", [doc(kind, "a", 1, writer=n)]) for n in range(20))
    )
    winners = [n for n, result in enumerate(results) if result.claimed == ["a"]]
    assert len(winners) == 1
    assert sum(result.conflicted == ["a"] for result in results) == 19
    assert await storage.get_versions(kind, "c1", "a") == [doc(kind, "a", 1, writer=winners[0])]


async def test_get_versions_is_oldest_first(storage, kind):
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 2)])
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 1)])
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 3), doc(kind, "b", 1)])
    assert await storage.get_versions(kind, "c1", "a") == [doc(kind, "a", v) for v in (1, 2, 3)]


async def test_get_version_page_pages_by_version_with_count_and_newest(storage, kind):
    for v in (5, 1, 2, 3, 4):  # claimed out of order: the page is in version order all the same
        await storage.claim_versions(kind, "c1", [doc(kind, "a", v)])
    await storage.claim_versions(kind, "c1", [doc(kind, "b", 1)])
    first = await storage.get_version_page(kind, "c1", "a", None, 2)
    assert first.versions == [doc(kind, "a", 1), doc(kind, "a", 2)]
    assert (first.total, first.newest) == (5, doc(kind, "a", 5))
    later = await storage.get_version_page(kind, "c1", "a", 2, 10)
    assert later.versions == [doc(kind, "a", v) for v in (3, 4, 5)]
    assert (later.total, later.newest) == (5, doc(kind, "a", 5))
    past = await storage.get_version_page(kind, "c1", "a", 5, 10)
    assert (past.versions, past.total, past.newest) == ([], 5, doc(kind, "a", 5))
    assert (await storage.get_version_page(kind, "c1", "a", None, 0)).versions == []


async def test_get_version_page_of_an_unknown_id_is_empty(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1))
    for collection_id, document_id in (("c1", "unknown"), ("other", "a")):
        found = await storage.get_version_page(kind, collection_id, document_id, None, 10)
        assert (found.versions, found.total, found.newest) == ([], 0, None)


async def test_get_versions_of_an_unknown_id_is_empty(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1))
    assert await storage.get_versions(kind, "c1", "unknown") == []
    assert await storage.get_versions(kind, "other", "a") == []


async def test_get_latest_versions_picks_the_highest_from_the_history(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1), doc(kind, "b", 1))
    # history ahead of the current view: a writer claimed but has not published yet
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 3), doc(kind, "b", 2)])
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 2)])
    latest = await storage.get_latest_versions(kind, "c1", ["a", "b", "missing"])
    assert latest == {"a": doc(kind, "a", 3), "b": doc(kind, "b", 2)}
    assert await storage.get_latest_versions(kind, "c1", []) == {}
    assert await storage.get_latest_versions(kind, "c1", ["missing"]) == {}


async def test_versions_of_double_digits_sort_as_numbers(storage, kind):
    for version in (9, 10, 2, 11, 1):
        await storage.claim_versions(kind, "c1", [doc(kind, "a", version)])
    assert [d["sysData"] for d in await storage.get_versions(kind, "c1", "a")] == [
        doc(kind, "a", v)["sysData"] for v in (1, 2, 9, 10, 11)
    ]
    assert await storage.get_latest_versions(kind, "c1", ["a"]) == {"a": doc(kind, "a", 11)}


async def test_find_applied_finds_the_version_a_transaction_wrote(storage, kind):
    def written(document_id: str, version: int, transaction: str) -> dict:
        document = doc(kind, document_id, version)
        document["sysData"]["sysTransactionId"] = transaction
        return document

    await storage.claim_versions(kind, "c1", [written("a", 1, "t1"), written("b", 1, "t1")])
    await storage.claim_versions(kind, "c1", [written("a", 2, "t2"), written("c", 1, "t2")])
    await storage.claim_versions(kind, "c2", [written("d", 1, "t2")])
    assert await storage.find_applied(kind, "c1", ["a", "b", "c", "d", "x"], "t2") == {
        "a": written("a", 2, "t2"),
        "c": written("c", 1, "t2"),
    }
    assert await storage.find_applied(kind, "c1", ["a", "b"], "t1") == {
        "a": written("a", 1, "t1"),
        "b": written("b", 1, "t1"),
    }
    assert await storage.find_applied(kind, "c1", [], "t1") == {}
    assert await storage.find_applied(kind, "c1", ["a"], "unknown") == {}


# ---- claimed but unpublished versions: rolled forward, never back ------------------------------------------------


async def test_roll_forward_publishes_a_version_claimed_and_never_published(storage, kind):
    # what a writer killed between its claim and its publish leaves: a new id with history and no current view
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 1, note="claimed")])
    assert await storage.roll_forward(kind, "c1", ["a", "missing"]) == {"a": doc(kind, "a", 1, note="claimed")}
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": doc(kind, "a", 1, note="claimed")}
    assert await storage.list_current(kind, "c1", DocumentQuery()) == [doc(kind, "a", 1, note="claimed")]


async def test_roll_forward_moves_a_current_view_behind_the_history_to_the_newest_claim(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1), doc(kind, "b", 1))
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 2, note="claimed")])
    assert await storage.roll_forward(kind, "c1", ["a", "b"]) == {"a": doc(kind, "a", 2, note="claimed"),
                                                                  "b": doc(kind, "b", 1)}
    assert await storage.get_current(kind, "c1", ["a", "b"]) == {"a": doc(kind, "a", 2, note="claimed"),
                                                                 "b": doc(kind, "b", 1)}
    assert await storage.roll_forward(kind, "c1", []) == {}


async def test_publish_behind_publishes_only_where_the_current_view_is_absent_or_older(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 2), doc(kind, "b", 1))
    published = await storage.publish_behind(kind, "c1", [doc(kind, "a", 1, note="old"), doc(kind, "b", 2),
                                                          doc(kind, "c", 1)])
    assert sorted(document["id"] for document in published) == ["b", "c"]
    assert await storage.get_current(kind, "c1", ["a", "b", "c"]) == {
        "a": doc(kind, "a", 2), "b": doc(kind, "b", 2), "c": doc(kind, "c", 1)}
    assert await storage.publish_behind(kind, "c1", [doc(kind, "b", 2)]) == []
    assert await storage.publish_behind(kind, "c1", []) == []


async def test_concurrent_roll_forwards_and_the_claiming_writer_publish_one_version(storage, kind):
    # a reader, the next writer and the repair pass may all finish the same claim while its writer publishes
    await storage.claim_versions(kind, "c1", [doc(kind, "a", 1)])
    await asyncio.gather(storage.put_current(kind, "c1", [doc(kind, "a", 1)]),
                         *(storage.roll_forward(kind, "c1", ["a"]) for _ in range(5)))
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": doc(kind, "a", 1)}
    assert await storage.get_versions(kind, "c1", "a") == [doc(kind, "a", 1)]


async def test_scan_history_pages_every_version_in_collection_id_version_order(storage, kind):
    await storage.claim_versions(kind, "c2", [doc(kind, "a", 1)])
    for version in (10, 2, 1):
        await storage.claim_versions(kind, "c1", [doc(kind, "b", version), doc(kind, "é", version)])
    await storage.claim_versions(kind, "C0", [doc(kind, "z", 1), doc(kind, "B", 1)])
    expected = [("C0", "B", 1), ("C0", "z", 1), ("c1", "b", 1), ("c1", "b", 2), ("c1", "b", 10), ("c1", "é", 1),
                ("c1", "é", 2), ("c1", "é", 10), ("c2", "a", 1)]
    assert await storage.scan_history(kind, None, 100) == expected
    walked, after = [], None
    while True:
        page = await storage.scan_history(kind, after, 2)
        walked.extend(page)
        if len(page) < 2:
            break
        after = page[-1]
    assert walked == expected
    assert await storage.scan_history(kind, ("c1", "b", 2), 3) == expected[4:7]
    assert await storage.scan_history(kind, None, 0) == []


async def audit(storage, kind: str, page_size: int) -> tuple[int, list]:
    checked, problems = 0, []
    async for page_checked, page_problems in storage.audit_versions(kind, page_size):
        checked += page_checked
        problems.extend(page_problems)
    return checked, problems


@pytest.mark.parametrize("page_size", [1, 2, 1000])
async def test_audit_versions_finds_unpublished_versions_and_gaps(storage, kind, page_size):
    await store(storage, kind, "c1", doc(kind, "fine", 1))
    await store(storage, kind, "c1", doc(kind, "fine", 2))
    await storage.claim_versions(kind, "c1", [doc(kind, "new", 1)])  # a writer died before publishing
    await store(storage, kind, "c1", doc(kind, "behind", 1))
    await storage.claim_versions(kind, "c1", [doc(kind, "behind", 2)])
    await store(storage, kind, "c2", doc(kind, "gap", 1))
    await store(storage, kind, "c2", doc(kind, "gap", 3))
    checked, problems = await audit(storage, kind, page_size)
    assert checked == 4
    assert {(p.collection_id, p.id, p.newest, p.current, p.missing, p.unpublished) for p in problems} == {
        ("c1", "new", 1, None, 0, True), ("c1", "behind", 2, 1, 0, True), ("c2", "gap", 3, 3, 1, False)}
    for problem in problems:
        if problem.unpublished:
            await storage.roll_forward(kind, problem.collection_id, [problem.id])
    _, left = await audit(storage, kind, page_size)
    assert [(problem.id, problem.describe()) for problem in left] == [
        ("gap", f"{kind} c2/gap: the history lacks 1 of versions 1..3")]


async def test_audit_of_an_empty_store_finds_nothing(storage, kind):
    assert await audit(storage, kind, 10) == (0, [])


# ---- lists -------------------------------------------------------------------------------------------------


async def test_list_current_pages_in_code_point_order_of_ids(storage, kind):
    ids = ["b", "B", "é", "z", "\U0001F600", "\uff5e", "a10", "a9"]
    await store(storage, kind, "c1", *(doc(kind, i, 1) for i in ids))
    pages, after = [], None
    while page := await storage.list_current(kind, "c1", DocumentQuery(after_id=after, limit=3)):
        pages.append([d["id"] for d in page])
        after = page[-1]["id"]
    assert [len(page) for page in pages] == [3, 3, 2]
    assert [i for page in pages for i in page] == sorted(ids)
    assert await storage.count_current(kind, "c1", DocumentQuery(after_id="z", limit=1)) == len(ids)
    assert await storage.list_current(kind, "c1", DocumentQuery(limit=0)) == []
    assert await storage.list_current(kind, "unknown", DocumentQuery()) == []
    assert await storage.count_current(kind, "unknown", DocumentQuery()) == 0


async def test_list_current_filters_types_and_soft_deleted_documents(storage, kind):
    type_field = TYPE_FIELD[kind]
    await store(
        storage, kind, "c1",
        doc(kind, "a", 1, **{type_field: "T1"}),
        doc(kind, "b", 1, **{type_field: "T2"}),
        doc(kind, "c", 1, **{type_field: "T1"}, isActive=False),
    )
    listed = await storage.list_current(kind, "c1", DocumentQuery())
    assert listed == [doc(kind, "a", 1, **{type_field: "T1"}), doc(kind, "b", 1, **{type_field: "T2"})]
    everything = DocumentQuery(active_only=False)
    assert [d["id"] for d in await storage.list_current(kind, "c1", everything)] == ["a", "b", "c"]
    only_t1 = DocumentQuery(types=frozenset({"T1", "alias-of-T1"}), active_only=False)
    assert [d["id"] for d in await storage.list_current(kind, "c1", only_t1)] == ["a", "c"]
    assert await storage.count_current(kind, "c1", only_t1) == 2
    assert await storage.list_current(kind, "c1", DocumentQuery(types=frozenset())) == []
    assert await storage.count_current(kind, "c1", DocumentQuery(types=frozenset())) == 0
    assert await storage.count_current(kind, "c1", DocumentQuery()) == 2
    assert await storage.count_by_type(kind, "c1") == {"T1": 1, "T2": 1}
    assert await storage.count_by_type(kind, "unknown") == {}


async def test_additional_types_match_only_when_the_query_asks(storage):
    await store(storage, "entities", "c1",
                entity("a", 1, entityType="T1"),
                entity("b", 1, entityType="T2", additionalEntityTypes=["T9", "T1"]),
                entity("c", 1, entityType="T1", additionalEntityTypes=["T1"]),  # found by both: listed once
                entity("d", 1, entityType="T3", additionalEntityTypes=["T4"]),
                entity("e", 1, entityType="T2", additionalEntityTypes=["T1"], isActive=False))
    exact = DocumentQuery(types=frozenset({"T1"}))
    assert [d["id"] for d in await storage.list_current("entities", "c1", exact)] == ["a", "c"]
    assert await storage.count_current("entities", "c1", exact) == 2
    wide = replace(exact, additional_types=True)
    assert [d["id"] for d in await storage.list_current("entities", "c1", wide)] == ["a", "b", "c"]
    assert await storage.count_current("entities", "c1", wide) == 3
    second = replace(wide, after_id="a", limit=1)
    assert [d["id"] for d in await storage.list_current("entities", "c1", second)] == ["b"]
    assert await storage.count_current("entities", "c1", replace(wide, active_only=False)) == 4
    assert await storage.list_current("entities", "c1", replace(wide, types=frozenset())) == []


async def test_additional_types_page_through_950_names(storage):
    # subclass-aware: the names go in parts of at most 200 against each field, an entity found twice is one
    names = [f"T{n:03d}" for n in range(950)]
    await store(storage, "entities", "c1", *(
        entity(f"d{n:03d}", 1, entityType=names[(n * 37) % 950], additionalEntityTypes=[names[(n * 11) % 950]])
        for n in range(60)))
    wanted = frozenset(names[::2])
    expected = [f"d{n:03d}" for n in range(60) if ((n * 37) % 950) % 2 == 0 or ((n * 11) % 950) % 2 == 0]
    query = DocumentQuery(types=wanted, additional_types=True, limit=7)
    walked, after = [], None
    while page := await storage.list_current("entities", "c1", replace(query, after_id=after)):
        assert len(page) <= 7
        walked.extend(d["id"] for d in page)
        after = page[-1]["id"]
    assert walked == expected
    assert await storage.count_current("entities", "c1", query) == len(expected)


async def test_list_current_equality_filters(storage):
    await store(
        storage, "relationships", "c1",
        relationship("r1", 1, sourceEntityId="e1", destinationEntityId="e2", destinationERCollectionId="c1"),
        relationship("r2", 1, sourceEntityId="e1", destinationEntityId="e3", destinationERCollectionId="c2"),
        relationship("r3", 1, sourceEntityId="e4", destinationEntityId="e3", destinationERCollectionId="c2"),
    )
    await store(storage, "entities", "c1", entity("e1", 1))

    async def ids(kind: str, **filters) -> list[str]:
        return [d["id"] for d in await storage.list_current(kind, "c1", DocumentQuery(**filters))]

    assert await ids("relationships", source_entity_id="e1") == ["r1", "r2"]
    assert await ids("relationships", destination_entity_id="e3") == ["r2", "r3"]
    assert await ids("relationships", destination_collection_id="c2", source_entity_id="e4") == ["r3"]
    assert await ids("entities", source_entity_id="e1") == []  # entities have no such field
    assert await storage.count_current("relationships", "c1", DocumentQuery(destination_entity_id="e3")) == 2


async def test_edges_of_an_entity_across_collections(storage):
    def edge(home: str, relationship_id: str, source: str, destination: str | None, destination_entity: str,
             **extra) -> dict:
        document = relationship(relationship_id, 1, sourceEntityId=source, sourceERCollectionId=home,
                                destinationEntityId=destination_entity, destinationERCollectionId=destination,
                                **extra)
        if destination is None:
            del document["destinationERCollectionId"]
        return document

    await store(
        storage, "relationships", "c1",
        edge("c1", "r1", "e1", "c2", "e9"),  # outgoing
        edge("c1", "r2", "e2", "c1", "e1"),  # incoming
        edge("c1", "r3", "e1", "c1", "e1"),  # a loop: returned once
        edge("c1", "r4", "e1", "c2", "e9", isActive=False),  # soft-deleted
        edge("c1", "r8", "e5", None, "e1"),  # no destination collection: points into its own, c1
    )
    await store(storage, "relationships", "c2", edge("c2", "r5", "x1", "c1", "e1"), edge("c2", "r6", "x2", "c3", "e1"))
    await store(storage, "relationships", "c3", edge("c3", "r7", "y1", None, "e1"))

    async def keys(**fields) -> list[tuple[str, str]]:
        found = await storage.find_edges(EdgeQuery(collection_id="c1", entity_id="e1", **fields))
        return [(d["sourceERCollectionId"], d["id"]) for d in found]

    assert await keys() == [("c1", "r1"), ("c1", "r2"), ("c1", "r3"), ("c1", "r8"), ("c2", "r5")]
    assert await storage.count_edges(EdgeQuery(collection_id="c1", entity_id="e1")) == {"c1": 4, "c2": 1}
    assert await keys(incoming=False) == [("c1", "r1"), ("c1", "r3")]
    assert await keys(outgoing=False) == [("c1", "r2"), ("c1", "r3"), ("c1", "r8"), ("c2", "r5")]
    assert await keys(outgoing=False, incoming=False) == []
    assert await keys(source_collections=frozenset({"c2"})) == [("c2", "r5")]
    assert [key[1] for key in await keys(active_only=False)] == ["r1", "r2", "r3", "r4", "r8", "r5"]
    assert await keys(after=("c1", "r2"), limit=2) == [("c1", "r3"), ("c1", "r8")]
    assert await keys(after=("c1", "r8"), limit=None) == [("c2", "r5")]
    counted = await storage.count_edges(EdgeQuery(collection_id="c1", entity_id="e1", after=("c9", ""), limit=0))
    assert counted == {"c1": 4, "c2": 1}  # paging is ignored
    assert await storage.find_edges(EdgeQuery(collection_id="c1", entity_id="nobody")) == []


async def store_frontier_graph(storage) -> None:
    """e1 and e2 of c1, x1 of c2: edges of two types, across collections, a loop, a deleted one, an implicit
    destination collection, and one edge between two frontier entities."""
    def edge(home, relationship_id, source, destination, destination_entity, kind="F", **extra):
        document = relationship(relationship_id, 1, sourceEntityId=source, sourceERCollectionId=home,
                                destinationEntityId=destination_entity, destinationERCollectionId=destination,
                                relationshipType=kind, **extra)
        if destination is None:
            del document["destinationERCollectionId"]
        return document

    await store(
        storage, "relationships", "c1",
        edge("c1", "r1", "e1", "c2", "x1"),  # e1 -> x1 (cross-collection)
        edge("c1", "r2", "e1", "c1", "e2", kind="G"),  # e1 -> e2, both in the frontier: returned once
        edge("c1", "r3", "e2", "c1", "e2"),  # a loop
        edge("c1", "r4", "e2", "c1", "e3", isActive=False),
        edge("c1", "r5", "e9", None, "e1", kind="G"),  # into e1, destination collection implied
        edge("c1", "r6", "e9", "c1", "e8"),  # touches no frontier entity
    )
    await store(storage, "relationships", "c2", edge("c2", "s1", "x1", "c1", "e2"), edge("c2", "s2", "x2", "c2", "e1"))
    await store(storage, "relationships", "c3", edge("c3", "t1", "y1", "c1", "e1", kind="G"))


async def test_frontier_edges_of_many_entities_in_one_call(storage):
    await store_frontier_graph(storage)
    frontier = frozenset({("c1", "e1"), ("c1", "e2"), ("c9", "nobody")})

    async def keys(**fields) -> list[tuple[str, str]]:
        found = await storage.find_frontier_edges(FrontierQuery(frontier, **fields))
        return [(d["sourceERCollectionId"], d["id"]) for d in found]

    everything = [("c1", "r1"), ("c1", "r2"), ("c1", "r3"), ("c1", "r5"), ("c2", "s1"), ("c3", "t1")]
    assert await keys() == everything  # s2 points at e1 of c2, not of c1; r4 is deleted; r6 touches neither
    assert await keys(incoming=False) == [("c1", "r1"), ("c1", "r2"), ("c1", "r3")]
    assert await keys(outgoing=False) == [("c1", "r2"), ("c1", "r3"), ("c1", "r5"), ("c2", "s1"), ("c3", "t1")]
    assert await keys(outgoing=False, incoming=False) == []
    assert await keys(outgoing_types=frozenset({"G"}), incoming_types=frozenset({"F"})) == [
        ("c1", "r2"), ("c1", "r3"), ("c2", "s1")]
    assert await keys(outgoing_types=frozenset(), incoming=False) == []
    assert await keys(source_collections=frozenset({"c1", "c3"})) == [
        ("c1", "r1"), ("c1", "r2"), ("c1", "r3"), ("c1", "r5"), ("c3", "t1")]
    assert [key[1] for key in await keys(active_only=False)] == ["r1", "r2", "r3", "r4", "r5", "s1", "t1"]
    assert await keys(limit=2) == everything[:2]
    assert await keys(limit=0) == []
    assert await storage.find_frontier_edges(FrontierQuery(frozenset())) == []
    other_side = await storage.find_frontier_edges(FrontierQuery(frozenset({("c2", "x1"), ("c2", "e1")})))
    assert [d["id"] for d in other_side] == ["r1", "s1", "s2"]


async def test_current_documents_across_collections_in_one_call(storage, kind):
    await store(storage, kind, "c1", doc(kind, "a", 1), doc(kind, "b", 1, isActive=False))
    await store(storage, kind, "c2", doc(kind, "a", 1))
    await store(storage, kind, "c2", doc(kind, "a", 2))
    found = await storage.get_current_across(kind, [("c1", "a"), ("c1", "b"), ("c2", "a"), ("c2", "b"), ("c9", "a")])
    assert sorted(found) == [("c1", "a"), ("c1", "b"), ("c2", "a")]
    assert found[("c2", "a")]["sysData"][VERSION_FIELD[kind]] == 2
    assert found[("c1", "b")]["isActive"] is False  # inactive documents are returned too
    assert await storage.get_current_across(kind, []) == {}
    found[("c1", "a")]["id"] = "changed"  # a copy: the stored document is untouched
    assert (await storage.get_current_across(kind, [("c1", "a")]))[("c1", "a")]["id"] == "a"


async def test_lists_and_edges_follow_a_document_to_its_newest_version(storage):
    """A new version that moves a relationship's ends, or deactivates it, moves it in every list and count."""
    await store(storage, "relationships", "c1",
                relationship("r1", 1, sourceEntityId="e1", destinationEntityId="e2", destinationERCollectionId="c1"),
                relationship("r2", 1, sourceEntityId="e1", destinationEntityId="e2", destinationERCollectionId="c1"))
    await store(storage, "relationships", "c1",
                relationship("r1", 2, sourceEntityId="e3", destinationEntityId="e4", destinationERCollectionId="c2"),
                relationship("r2", 2, sourceEntityId="e1", destinationEntityId="e2", destinationERCollectionId="c1",
                             isActive=False))

    async def edge_ids(collection_id: str, entity_id: str, **fields) -> list[str]:
        return [d["id"] for d in await storage.find_edges(EdgeQuery(collection_id, entity_id, **fields))]

    assert await edge_ids("c1", "e1") == []
    assert await edge_ids("c1", "e1", active_only=False) == ["r2"]
    assert await edge_ids("c1", "e2") == []
    assert await edge_ids("c1", "e3") == ["r1"]
    assert await edge_ids("c2", "e4") == ["r1"]
    assert await storage.count_edges(EdgeQuery("c2", "e4")) == {"c1": 1}
    listed = await storage.list_current("relationships", "c1", DocumentQuery(source_entity_id="e1"))
    assert listed == []
    listed = await storage.list_current("relationships", "c1", DocumentQuery(source_entity_id="e3"))
    assert [(d["id"], d["sysData"]["sysRelationshipVersion"]) for d in listed] == [("r1", 2)]
    assert await storage.count_current("relationships", "c1", DocumentQuery()) == 1
    assert await storage.count_current("relationships", "c1", DocumentQuery(active_only=False)) == 2
    assert await storage.count_by_type("relationships", "c1") == {RELATIONSHIP_TYPE: 1}
    # a stale version published late changes nothing
    await storage.put_current("relationships", "c1", [relationship("r1", 1, sourceEntityId="e1")])
    assert await edge_ids("c1", "e3") == ["r1"]
    assert await storage.count_current("relationships", "c1", DocumentQuery()) == 1


async def test_lists_page_with_filters_and_types_together(storage, kind):
    type_field = TYPE_FIELD[kind]
    await store(storage, kind, "c1", *(doc(kind, f"d{n:02d}", 1, **{type_field: f"T{n % 3}"}) for n in range(20)))
    query = DocumentQuery(types=frozenset({"T0", "T2"}), limit=4)
    pages, after = [], None
    while page := await storage.list_current(kind, "c1", replace(query, after_id=after)):
        pages.append([d["id"] for d in page])
        after = page[-1]["id"]
    expected = [f"d{n:02d}" for n in range(20) if n % 3 != 1]
    assert [i for page in pages for i in page] == expected
    assert [len(page) for page in pages] == [4, 4, 4, 1]
    assert await storage.count_current(kind, "c1", replace(query, after_id="d10")) == len(expected)
    assert await storage.find_edges(EdgeQuery("c1", "e1", source_collections=frozenset())) == []


async def test_a_type_filter_of_950_names_pages_like_one_of_few(storage, kind):
    # a Brick class with its subtypes can name ~950 types (Point); the matches fall in several hundred-name parts
    type_field = TYPE_FIELD[kind]
    names = [f"T{n:03d}" for n in range(950)]
    await store(storage, kind, "c1", *(doc(kind, f"d{n:03d}", 1, **{type_field: names[(n * 37) % 950]})
                                       for n in range(60)))
    wanted = frozenset(names[::2] + ["not-stored"])
    expected = [f"d{n:03d}" for n in range(60) if ((n * 37) % 950) % 2 == 0]
    query = DocumentQuery(types=wanted, limit=7)
    walked, after = [], None
    while page := await storage.list_current(kind, "c1", replace(query, after_id=after)):
        assert len(page) <= 7
        walked.extend(d["id"] for d in page)
        after = page[-1]["id"]
    assert walked == expected
    assert await storage.count_current(kind, "c1", query) == len(expected)


# ---- isolation and copies ------------------------------------------------------------------------------------


async def test_collections_and_kinds_are_isolated(storage):
    await store(storage, "entities", "c1", entity("x", 1, note="c1"))
    await store(storage, "entities", "c2", entity("x", 1, note="c2"), entity("x", 2, note="c2 v2"))
    await store(storage, "relationships", "c1", relationship("x", 1))
    assert await storage.get_current("entities", "c1", ["x"]) == {"x": entity("x", 1, note="c1")}
    assert await storage.get_current("entities", "c2", ["x"]) == {"x": entity("x", 2, note="c2 v2")}
    assert await storage.get_current("relationships", "c1", ["x"]) == {"x": relationship("x", 1)}
    assert await storage.get_current("relationships", "c2", ["x"]) == {}
    assert await storage.get_versions("entities", "c1", "x") == [entity("x", 1, note="c1")]
    assert await storage.get_latest_versions("entities", "c1", ["x"]) == {"x": entity("x", 1, note="c1")}
    # the same version in another collection is no conflict
    claim = await storage.claim_versions("entities", "c3", [entity("x", 1)])
    assert claim.claimed == ["x"]


async def test_documents_come_back_exactly_as_stored(storage, kind):
    tricky = doc(
        kind,
        "a",
        1,
        nothing=None,
        flag=False,
        ratio=0.25,
        big=2**40,
        text="Lüftung ✓ \"quoted\" $notAnOperator",
        nested={"list": [1, "two", {"three": [None]}], "empty": {}},
        # names the MongoDB plugin uses for itself must survive as the caller's own data
        _id="client-value",
        ercollectionid="not-the-collection",
        recordKind="client-kind",
    )
    await store(storage, kind, "c1", tricky)
    await store(storage, kind, "c1", doc(kind, "b", 1, _id="client-value"))  # same client _id, no clash
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": tricky}
    assert await storage.get_versions(kind, "c1", "a") == [tricky]
    assert await storage.get_latest_versions(kind, "c1", ["a"]) == {"a": tricky}
    assert (await storage.get_current(kind, "c1", ["b"]))["b"]["_id"] == "client-value"


async def test_returned_and_given_documents_are_copies(storage, kind):
    given = doc(kind, "a", 1, tags=["x"])
    await store(storage, kind, "c1", given)
    given["tags"].append("changed by the caller after the call")
    given["sysData"]["note"] = "changed"
    for found in (
        (await storage.get_current(kind, "c1", ["a"]))["a"],
        (await storage.get_versions(kind, "c1", "a"))[0],
        (await storage.get_latest_versions(kind, "c1", ["a"]))["a"],
    ):
        found["tags"].append("changed by a reader")
        found["sysData"]["sysCreatedAt"] = "changed"
        found["entityType" if kind == "entities" else "relationshipType"] = "changed"
    assert await storage.get_current(kind, "c1", ["a"]) == {"a": doc(kind, "a", 1, tags=["x"])}
    assert await storage.get_versions(kind, "c1", "a") == [doc(kind, "a", 1, tags=["x"])]


# ---- all-or-nothing batches ----------------------------------------------------------------------------------
# A plugin either has the means (atomic_unavailable() is None) or says why not and refuses atomic(): the tests
# decide by that answer, never by the plugin's or the server's name.


async def test_a_backend_without_the_means_refuses_atomic_batches_with_its_reason(storage):
    reason = storage.atomic_unavailable()
    if reason is None:
        async with storage.atomic():
            pass
        return
    assert isinstance(reason, str) and reason
    with pytest.raises(StorageError, match=re.escape(reason)):
        async with storage.atomic():
            raise AssertionError("atomic() must refuse before the block runs")


async def test_an_atomic_batch_is_kept_whole_when_it_ends_and_unseen_before(storage):
    if storage.atomic_unavailable() is not None:
        return  # the refusal is the test above
    async with storage.atomic() as view:
        assert (await view.claim_versions("entities", "c1", [entity("e1", 1), entity("e2", 1)])).claimed == [
            "e1", "e2"]
        await view.put_current("entities", "c1", [entity("e1", 1), entity("e2", 1)])
        await view.claim_versions("relationships", "c1", [relationship("r1", 1)])
        await view.put_current("relationships", "c1", [relationship("r1", 1)])
        assert await storage.get_current("entities", "c1", ["e1", "e2"]) == {}
        assert await storage.get_versions("relationships", "c1", "r1") == []
    assert set(await storage.get_current("entities", "c1", ["e1", "e2"])) == {"e1", "e2"}
    assert [v["sysData"] for v in await storage.get_versions("relationships", "c1", "r1")] == [
        relationship("r1", 1)["sysData"]]


async def test_an_atomic_batch_left_with_an_exception_keeps_nothing(storage):
    if storage.atomic_unavailable() is not None:
        return
    with pytest.raises(RuntimeError):
        async with storage.atomic() as view:
            await view.claim_versions("entities", "c1", [entity("e1", 1)])
            await view.put_current("entities", "c1", [entity("e1", 1)])
            raise RuntimeError("an item failed")
    assert await storage.get_current("entities", "c1", ["e1"]) == {}
    assert await storage.get_versions("entities", "c1", "e1") == []


async def test_an_atomic_claim_of_a_stored_version_is_a_conflict_and_keeps_nothing(storage):
    if storage.atomic_unavailable() is not None:
        return
    await storage.claim_versions("entities", "c1", [entity("taken", 1)])
    with pytest.raises(AtomicConflict):
        async with storage.atomic() as view:
            await view.claim_versions("entities", "c1", [entity("free", 1)])
            await view.claim_versions("entities", "c1", [entity("taken", 1, entityName="mine")])
            await view.put_current("entities", "c1", [entity("free", 1)])
    assert await storage.get_versions("entities", "c1", "free") == []
    assert [v["entityName"] for v in await storage.get_versions("entities", "c1", "taken")] == ["AHU taken"]
