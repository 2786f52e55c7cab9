"""?atomic=true: a batch is written whole or not at all, and readers never see part of one."""

from __future__ import annotations

import asyncio

import pytest

from erapi.keys import storage_key
from tests.api_fixtures import Api, entity, relationship
from tests.write_options_helpers import outcome, stored_state

C = "c1"
ATOMIC = {"atomic": "true"}
SIZE = 100


@pytest.fixture
async def site(api) -> Api:
    await api.register(C)
    await api.entities(C, [entity("a"), entity("b")])
    return api


def refusal(api: Api) -> str | None:
    """The 400 this backend answers to atomic=true, or None when it has the means (decided by the plugin)."""
    reason = api.client.app[storage_key].atomic_unavailable()
    return None if reason is None else f"atomic=true is not available here: {reason}"


async def assert_refused(api: Api, body: list[dict], **kwargs) -> None:
    """This backend cannot write all or nothing: the 400 names the reason and nothing is written."""
    storage = api.client.app[storage_key]
    before = await stored_state(storage, [C])
    answer = await api.relationships(C, body, expect=400, params=ATOMIC, **kwargs)
    assert answer["status"]["message"] == refusal(api)
    assert await stored_state(storage, [C]) == before


def batch(generation: int, bad: int | None = None) -> list[dict]:
    return [relationship(f"r{i:03d}", "a", "nobody" if i == bad else "b", generation=generation)
            for i in range(SIZE)]


async def test_a_batch_with_one_bad_item_writes_nothing(site):
    if refusal(site):
        return await assert_refused(site, batch(1, bad=42))
    storage = site.client.app[storage_key]
    await site.relationships(C, batch(0))
    before = await stored_state(storage, [C])
    answer = await site.relationships(C, batch(1, bad=42), params=ATOMIC)
    responses = answer["data"]["responses"]
    assert answer["status"]["message"] == "Total number of Relationships Upserted:  0."
    assert responses["success"] == []
    failures = {item["id"]: item["message"] for item in responses["failure"]}
    assert failures.pop("r042") == "Destination entity nobody not found in ERCollection c1"
    assert set(failures.values()) == {"Not written: the batch is atomic (atomic=true) and 1 of its items failed"}
    assert len(failures) == SIZE - 1
    after = await stored_state(storage, [C])
    assert after[f"{C}/relationships"] == before[f"{C}/relationships"]
    assert after[f"{C}/relationships/versions"] == before[f"{C}/relationships/versions"]


async def test_a_good_batch_is_written_whole(site):
    if refusal(site):
        return await assert_refused(site, batch(1))
    answer = await site.relationships(C, batch(1), params=ATOMIC)
    assert len(answer["data"]["responses"]["success"]) == SIZE
    listed = await site.call("GET", "/apollo/er/relationships", 200, collection=C, headers={"PageSize": "1000"})
    assert {document["generation"] for document in listed["data"]} == {1} and len(listed["data"]) == SIZE


async def test_a_reader_never_sees_part_of_an_atomic_batch(site):
    if refusal(site):
        return await assert_refused(site, batch(0))
    await site.relationships(C, batch(0), params=ATOMIC)
    seen: list[set[int]] = []
    writing = True

    async def read() -> None:
        while writing:
            page = await site.call("GET", "/apollo/er/relationships", 200, collection=C,
                                   headers={"PageSize": "1000"})
            seen.append({document["generation"] for document in page["data"]})
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    for generation in range(1, 6):
        await site.relationships(C, batch(generation), params=ATOMIC)
    writing = False
    await reader
    assert seen and all(len(generations) == 1 for generations in seen), seen


async def test_a_dry_run_of_an_atomic_batch_answers_the_same(site):
    if refusal(site):
        await site.relationships(C, batch(1, bad=3), expect=400, params={**ATOMIC, "validateOnly": "true"})
        return
    dry = await site.relationships(C, batch(1, bad=3), params={**ATOMIC, "validateOnly": "true"})
    real = await site.relationships(C, batch(1, bad=3), params=ATOMIC)
    assert outcome(dry) == outcome(real)


async def test_atomic_is_for_synchronous_requests(site):
    answer = await site.relationships(C, batch(1), expect=400, params=ATOMIC, headers={"async": "true"})
    assert answer["status"]["message"] == "atomic=true is available on synchronous requests only (async: false)"


async def test_atomic_entities(site):
    if refusal(site):
        await site.entities(C, [entity("x")], expect=400, params=ATOMIC)
        return
    answer = await site.entities(C, [entity("x"), entity("y", "BRICK_0_4__Nope")], params=ATOMIC)
    assert [item["id"] for item in answer["data"]["responses"]["failure"]] == ["x", "y"]
    await site.call("GET", "/apollo/er/entities/x", 404, collection=C)


async def test_memory_a_writer_landing_between_claim_and_commit_voids_the_whole_batch():
    # memory only: its atomic batch is staged, so a writer outside it can land in between (on MongoDB that
    # writer waits for the transaction instead); the batch must then keep nothing at all
    from storage_plugins.base import AtomicConflict, create_storage
    from tests.storage_contract.helpers import entity as stored_entity

    storage = create_storage("memory", {})
    await storage.open()
    with pytest.raises(AtomicConflict):
        async with storage.atomic() as view:
            await view.claim_versions("entities", C, [stored_entity("mine", 1), stored_entity("raced", 1)])
            await view.put_current("entities", C, [stored_entity("mine", 1), stored_entity("raced", 1)])
            await storage.claim_versions("entities", C, [stored_entity("raced", 1, entityName="theirs")])
    assert await storage.get_versions("entities", C, "mine") == []
    assert [v["entityName"] for v in await storage.get_versions("entities", C, "raced")] == ["theirs"]
    assert await storage.get_current("entities", C, ["mine", "raced"]) == {}
