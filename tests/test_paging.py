"""Paging of every list: PageSize, continuation tokens (signed, bound to collection and query), the edges of a
walk, and a walk that neither repeats nor skips while others write, up to 10,000 relationships."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest

from tests.api_fixtures import entity, relationship
from tests.read_helpers import page, seed, stored_entity, stored_relationship, walk
from tests.test_batch_first import calls_of, counted  # noqa: F401 (counted is a fixture)
from tests.test_jobs import wait_for_job

AHU = "ahu-0"
# every paged endpoint, reached in collection c1 where alice holds AHU ahu-0 and the relationship r-0
PAGED = [
    "/apollo/er/relationships",
    "/apollo/er/entities",
    "/apollo/er/relationshiptypes/BRICK_0_4__isFedBy_Equipment_Equipment/relationships",
    "/apollo/er/entitytypes/BRICK_0_4__AHU/entities",
    f"/apollo/er/entities/{AHU}/relationships",
    "/apollo/er/relationships/r-0/versions",
    f"/apollo/er/entities/{AHU}/versions",
]


@pytest.fixture
async def c1(api):
    await api.register("c1")
    await api.entities("c1", entity(AHU))
    await api.relationships("c1", relationship("r-0", AHU, AHU))  # a loop: both edges of ahu-0 at once
    return api


async def relationships_in(api, collection: str, count: int, prefix: str = "r") -> list[str]:
    """``count`` relationships between two AHUs of ``collection``, written through the API; their ids."""
    await api.entities(collection, [entity("a"), entity("b")])
    ids = [f"{prefix}{n:04d}" for n in range(count)]
    for start in range(0, count, 100):
        await api.relationships(collection, [relationship(i, "a", "b") for i in ids[start:start + 100]])
    return ids


# ---- PageSize -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGED)
@pytest.mark.parametrize("size", ["0", "1001", "abc", "-1", "1.5", "", " "])
async def test_page_size_outside_1_to_1000_is_400(c1, path, size):
    body = await page(c1, path, "c1", size=size, expect=400)
    assert body["status"]["message"] == "The PageSize header must be a whole number from 1 to 1000"


@pytest.mark.parametrize("path", PAGED)
async def test_page_size_1_and_1000_are_accepted(c1, path):
    for size in (1, 1000):
        body = await page(c1, path, "c1", size=size)
        assert len(body["data"]) == 1
        assert body["paging"] == {"totalCount": 1, "continuationToken": None}


async def test_page_size_defaults_to_100(api):
    await api.register("c1")
    await relationships_in(api, "c1", 150)
    body = await page(api, "/apollo/er/relationships", "c1")
    assert len(body["data"]) == 100
    assert body["paging"]["totalCount"] == 150
    rest = await page(api, "/apollo/er/relationships", "c1", token=body["paging"]["continuationToken"])
    assert len(rest["data"]) == 50
    assert rest["paging"]["continuationToken"] is None


# ---- the edges of a walk ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/apollo/er/relationships", "/apollo/er/entities",
                                  "/apollo/er/entitytypes/BRICK_0_4__AHU/entities",
                                  "/apollo/er/entities/nobody/relationships"])
async def test_an_empty_collection_is_one_empty_page(api, path):
    await api.register("empty")
    body = await page(api, path, "empty", size=10)
    assert body["status"] == {"message": "", "code": "200"}
    assert body["data"] == []
    assert body["paging"] == {"totalCount": 0, "continuationToken": None}


async def test_exactly_one_full_page_has_no_token(api):
    await api.register("c1")
    ids = await relationships_in(api, "c1", 10)
    body = await page(api, "/apollo/er/relationships", "c1", size=10)
    assert [r["id"] for r in body["data"]] == ids
    assert body["paging"] == {"totalCount": 10, "continuationToken": None}


async def test_the_last_page_holds_the_rest_and_has_no_token(api):
    await api.register("c1")
    ids = await relationships_in(api, "c1", 21)
    first = await page(api, "/apollo/er/relationships", "c1", size=10)
    second = await page(api, "/apollo/er/relationships", "c1", size=10, token=first["paging"]["continuationToken"])
    last = await page(api, "/apollo/er/relationships", "c1", size=10, token=second["paging"]["continuationToken"])
    assert [r["id"] for r in first["data"] + second["data"] + last["data"]] == ids
    assert [r["id"] for r in last["data"]] == ids[20:]
    assert last["paging"] == {"totalCount": 21, "continuationToken": None}
    assert first["paging"]["totalCount"] == second["paging"]["totalCount"] == 21


async def test_page_size_may_change_between_pages(api):
    await api.register("c1")
    ids = await relationships_in(api, "c1", 30)
    first = await page(api, "/apollo/er/relationships", "c1", size=5)
    rest = await page(api, "/apollo/er/relationships", "c1", size=1000, token=first["paging"]["continuationToken"])
    assert [r["id"] for r in first["data"] + rest["data"]] == ids


@pytest.mark.parametrize("path", PAGED)
async def test_every_list_walks_page_by_page(c1, path):
    await c1.entities("c1", [entity(f"ahu-{n}") for n in range(1, 5)])
    await c1.relationships("c1", [relationship(f"r-{n}", AHU, f"ahu-{n}") for n in range(1, 5)])
    for n in range(4):  # four more versions of r-0 and of ahu-0
        await c1.relationships("c1", relationship("r-0", AHU, AHU, relationshipName=f"v{n}"))
        await c1.entities("c1", entity(AHU, entityName=f"v{n}"))
    everything = (await page(c1, path, "c1", size=1000))["data"]
    assert len(everything) == 5
    assert [item for item in await walk(c1, path, "c1", 2)] == everything


# ---- continuation tokens ----------------------------------------------------------------------------------------


async def first_token(api, path="/apollo/er/relationships", collection="c1", params=None) -> str:
    body = await page(api, path, collection, size=1, params=params)
    assert body["paging"]["continuationToken"]
    return body["paging"]["continuationToken"]


@pytest.fixture
async def two(api):
    await api.register("c1")
    await api.register("c2")
    for collection in ("c1", "c2"):
        await relationships_in(api, collection, 3)
    return api


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # the signature
    lambda t: ("B" if t[0] != "B" else "C") + t[1:],  # the payload
    lambda t: t.split(".")[0],  # no signature at all
    lambda t: "not-a-token",
    lambda t: t + "é",
])
async def test_a_tampered_token_is_400(two, tamper):
    token = await first_token(two)
    body = await page(two, "/apollo/er/relationships", "c1", size=1, token=tamper(token), expect=400)
    assert body["status"]["message"] == "continuationToken is invalid"


async def test_a_token_from_another_collection_is_400(two):
    token = await first_token(two, collection="c2")
    body = await page(two, "/apollo/er/relationships", "c1", size=1, token=token, expect=400)
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


@pytest.mark.parametrize("path, params", [
    ("/apollo/er/relationships", {"sourceEntityId": "a"}),
    ("/apollo/er/relationships", {"includeInactive": "true"}),
    ("/apollo/er/relationshiptypes/BRICK_0_4__isFedBy_Equipment_Equipment/relationships", None),
    ("/apollo/er/entities/a/relationships", None),
    ("/apollo/er/entities", None),
])
async def test_a_token_from_another_query_is_400(two, path, params):
    token = await first_token(two)
    body = await page(two, path, "c1", size=1, token=token, params=params, expect=400)
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


async def test_a_token_of_the_status_tracker_is_not_a_list_token(two):
    await two.entities("c1", entity("a"))  # a second record for entity a
    logs = await two.status_logs("c1", {"entityid": "a", "limit": "1"})
    token = logs["paging"]["continuationToken"]
    assert token
    body = await page(two, "/apollo/er/relationships", "c1", size=1, token=token, expect=400)
    assert body["status"]["message"] == "continuationToken was issued for another collection or query"


async def test_the_same_filters_in_another_order_keep_the_token_valid(two):
    params = {"sourceEntityId": "a", "destinationEntityId": "b"}
    token = await first_token(two, params=params)
    reordered = {"destinationEntityId": "b", "sourceEntityId": "a"}
    body = await page(two, "/apollo/er/relationships", "c1", size=1, token=token, params=reordered)
    assert len(body["data"]) == 1


# ---- rights -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGED)
async def test_no_read_grant_is_403(c1, path):
    body = await page(c1.as_("mallory"), path, "c1", size=1, expect=403)
    assert body["status"]["message"] == "ERCollection c1 is not registered or the caller has no read grant on it"
    await c1.grant("c1", "writer", ["write"])
    await page(c1.as_("writer"), path, "c1", size=1, expect=403)
    await c1.grant("c1", "reader", ["read"])
    await page(c1.as_("reader"), path, "c1", size=1)


@pytest.mark.parametrize("path", PAGED)
async def test_unregistered_collection_is_403_and_missing_header_400_and_scope_403(c1, path):
    body = await page(c1, path, "ghost", expect=403)
    assert body["status"]["message"] == "ERCollection ghost is not registered or the caller has no read grant on it"
    body = await page(c1, path, None, expect=400)
    assert body["status"]["message"] == "The ercollectionid header is required"
    body = await page(c1.as_("alice", "apollo_write"), path, "c1", expect=403)
    assert body["status"]["message"] == "The token lacks the scope apollo_read"


@pytest.mark.parametrize("path", PAGED)
async def test_unknown_query_parameters_are_400(c1, path):
    body = await page(c1, path, "c1", params={"sourceentityid": "x"}, expect=400)
    assert body["status"]["message"].startswith("Unknown query parameter sourceentityid: this operation takes ")


# ---- cost: one query and one count per page -------------------------------------------------------------------


async def test_every_page_costs_one_storage_query_and_one_count(counted):  # noqa: F811 (the imported fixture)
    api, proxy = counted
    await api.register("c1")
    await api.register("c2")
    await relationships_in(api, "c1", 25)
    await api.entities("c2", entity("x"))
    await api.relationships("c2", relationship("in-0", "x", "a", destinationERCollectionId="c1"))
    for name in ("second", "third"):
        await api.relationships("c1", relationship("r0000", "a", "b", relationshipName=name))
    pages = {
        "/apollo/er/relationships": Counter(get_acl=1, list_current=1, count_current=1),
        "/apollo/er/entitytypes/BRICK_0_4__Equipment/entities": Counter(get_acl=1, list_current=1, count_current=1),
        "/apollo/er/relationshiptypes/BRICK_0_4__isFedBy_Equipment_Equipment/relationships":
            Counter(get_acl=1, list_current=1, count_current=1),
        # the edges count per collection first, then the ACL of each other collection, then read the page
        "/apollo/er/entities/a/relationships": Counter(get_acl=2, count_edges=1, find_edges=1),
        # and the current view, to publish a newest version its writer claimed but never published
        "/apollo/er/relationships/r0000/versions": Counter(get_acl=1, get_version_page=1, get_current=1),
    }
    params = {"/apollo/er/entitytypes/BRICK_0_4__Equipment/entities": {"includeSubtypes": "true"}}
    for path, cost in pages.items():
        token = None
        for first in (True, False):  # the first page, then one opened from a token
            body, calls = await calls_of(proxy, lambda path=path, token=token: page(
                api, path, "c1", size=1, token=token, params=params.get(path)))
            assert calls == cost, path
            token = body["paging"]["continuationToken"]
            assert token or not first, path
    _, calls = await calls_of(proxy, lambda: api.call("GET", "/apollo/er/ercollections/c1/stats", 200,
                                                      schema="collection-stats"))
    assert calls == Counter(get_acl=1, count_by_type=2)


async def test_a_status_page_costs_the_same_whatever_number_of_jobs_it_holds(counted):  # noqa: F811
    api, proxy = counted
    await api.register("c1")
    await api.entities("c1", [entity("a"), entity("b")])
    jobs = []
    for n in range(4):
        body = await api.call("POST", "/apollo/er/relationships", 202, collection="c1", headers={"async": "true"},
                              json_body=[relationship(f"j{n}-{i}", "a", "b") for i in range(2)])
        jobs.append(body["transactionId"])
    await asyncio.gather(*(wait_for_job(api, transaction_id) for transaction_id in jobs))

    async def tracker(params: dict) -> dict:
        return await api.status_logs("c1", {**params, "limit": "1000"})

    one, one_calls = await calls_of(proxy, lambda: tracker({"transactionid": jobs[0]}))
    every, every_calls = await calls_of(proxy, lambda: tracker({"starttime": "2000-01-01T00:00:00Z"}))
    assert sum(record["requestObject"] == "Job" for record in one["data"]) == 1
    assert [r["jobData"] for r in every["data"] if r["requestObject"] == "Job"] == [
        {"total": 2, "done": 2, "failed": 0, "pending": 0}] * 4
    assert every_calls == one_calls
    assert one_calls["count_log_states"] == 1 and one_calls["find_logs"] == 1


# ---- paging while others write -----------------------------------------------------------------------------------


async def test_a_walk_while_others_write_returns_every_original_exactly_once(api):
    await api.register("c1")
    await api.entities("c1", [entity("a"), entity("b")])
    original = [str(uuid.uuid4()) for _ in range(300)]
    for start in range(0, 300, 100):
        await api.relationships("c1", [relationship(i, "a", "b") for i in original[start:start + 100]])
    added = [str(uuid.uuid4()) for _ in range(60)]
    seen: list[str] = []
    token = None
    for batch in range(6):
        # a page read concurrently with a write of 10 new ids and an update of 10 originals
        writes = [relationship(i, "a", "b") for i in added[batch * 10:batch * 10 + 10]]
        writes += [relationship(i, "a", "b", relationshipName="updated") for i in original[batch::30][:10]]
        body, _ = await asyncio.gather(
            page(api, "/apollo/er/relationships", "c1", size=50, token=token),
            api.relationships("c1", writes),
        )
        seen.extend(r["id"] for r in body["data"])
        token = body["paging"]["continuationToken"]
    while token:
        body = await page(api, "/apollo/er/relationships", "c1", size=50, token=token)
        seen.extend(r["id"] for r in body["data"])
        token = body["paging"]["continuationToken"]
    assert len(seen) == len(set(seen)), "an item came twice"
    assert set(original) <= set(seen), "an item that existed at the first page was skipped"
    assert seen == sorted(seen)


@pytest.mark.slow
async def test_ten_thousand_relationships_in_pages_of_1000_while_1000_more_are_written(api, storage_name):
    await api.register("big")
    await seed(api, "entities", "big", [stored_entity("a"), stored_entity("b")])
    original = sorted(str(uuid.uuid4()) for _ in range(10_000))
    await seed(api, "relationships", "big", [stored_relationship(i, "big", "a", "b") for i in original])
    added = [str(uuid.uuid4()) for _ in range(1_000)]

    started = time.perf_counter()
    seen: list[str] = []
    token = None
    pages = 0
    writer_batches = iter(range(0, 1_000, 100))
    while True:
        start = next(writer_batches, None)
        reads = [page(api, "/apollo/er/relationships", "big", size=1000, token=token)]
        if start is not None:  # each page is read while a batch of 100 new relationships is being written
            reads.append(api.relationships("big", [relationship(i, "a", "b") for i in added[start:start + 100]]))
        body, *written = await asyncio.gather(*reads)
        assert all(len(w["data"]["responses"]["success"]) == 100 for w in written)
        pages += 1
        if pages == 1:
            assert body["paging"]["totalCount"] >= 10_000
        seen.extend(r["id"] for r in body["data"])
        token = body["paging"]["continuationToken"]
        if token is None:
            break
    elapsed = time.perf_counter() - started
    for start in writer_batches:  # the walk ended before the writer: finish writing anyway
        written = await api.relationships("big", [relationship(i, "a", "b") for i in added[start:start + 100]])
        assert len(written["data"]["responses"]["success"]) == 100

    assert len(seen) == len(set(seen)), "a relationship came twice"
    missing = set(original) - set(seen)
    assert not missing, f"{len(missing)} of the original relationships were skipped"
    assert seen == sorted(seen)
    assert set(seen) - set(original) <= set(added)
    final = await page(api, "/apollo/er/relationships", "big", size=1)
    assert final["paging"]["totalCount"] == 11_000
    print(f"\n[{storage_name}] 10,000-relationship walk in pages of 1,000 with a concurrent writer: "
          f"{pages} pages, {elapsed:.2f} s")
