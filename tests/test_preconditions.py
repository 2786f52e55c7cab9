"""Optimistic concurrency: ETag on reads, If-Match / If-None-Match on one-item writes, expectedVersion in batches."""

from __future__ import annotations

import asyncio

import pytest

from erapi.keys import storage_key
from tests.api_fixtures import Api, entity, relationship
from tests.write_options_helpers import stored_state

C = "c1"
WRITERS = 20


@pytest.fixture
async def site(api) -> Api:
    await api.register(C)
    await api.entities(C, [entity("a"), entity("b")])
    await api.relationships(C, relationship("r", "a", "b"))
    return api


async def versions(api: Api, kind: str, document_id: str) -> list[int]:
    field = "sysRelationshipVersion" if kind == "relationships" else "sysEntityVersion"
    return [v["sysData"][field] for v in await api.client.app[storage_key].get_versions(kind, C, document_id)]


async def read_etag(api: Api, kind: str, document_id: str) -> str:
    return (await api.call("GET", f"/apollo/er/{kind}/{document_id}", 200, collection=C))["_headers"]["ETag"]


async def test_every_read_of_one_document_carries_its_version_as_etag(site):
    assert await read_etag(site, "relationships", "r") == '"1"'
    assert await read_etag(site, "entities", "a") == '"1"'
    await site.entities(C, entity("a", note="second"))
    assert await read_etag(site, "entities", "a") == '"2"'
    typed = await site.call("GET", "/apollo/er/relationshiptypes/BRICK_0_4__isFedBy_Equipment_Equipment/"
                                   "relationships/r", 200, collection=C)
    assert typed["_headers"]["ETag"] == '"1"'


async def test_if_match_writes_on_the_read_version_and_answers_the_new_one(site):
    written = await site.relationships(C, relationship("r", "a", "b", note="x"), headers={"If-Match": '"1"'})
    assert [i["id"] for i in written["data"]["responses"]["success"]] == ["r"]
    assert written["_headers"]["ETag"] == '"2"' == await read_etag(site, "relationships", "r")
    stored = await site.call("GET", "/apollo/er/relationships/r", 200, collection=C)
    assert "expectedVersion" not in stored["data"][0]


async def test_a_stale_if_match_is_412_and_writes_nothing(site):
    await site.relationships(C, relationship("r", "a", "b", note="someone else"))
    storage = site.client.app[storage_key]
    before = await stored_state(storage, [C])
    refused = await site.relationships(C, relationship("r", "a", "b", note="mine"), expect=412,
                                       headers={"If-Match": 'W/"1"'})
    assert refused["status"]["message"] == (
        "Relationship r is at version 2, not the expected version 1; it was not written")
    assert await stored_state(storage, [C]) == before


async def test_if_none_match_star_creates_only(site):
    await site.entities(C, entity("fresh"), headers={"If-None-Match": "*"})
    refused = await site.entities(C, entity("fresh"), expect=412, headers={"If-None-Match": "*"})
    assert refused["status"]["message"] == "Entity fresh exists at version 1; expectedVersion 0 creates only a new id"
    assert await versions(site, "entities", "fresh") == [1]


async def test_if_match_star_needs_an_existing_version(site):
    refused = await site.entities(C, entity("ghost"), expect=412, headers={"If-Match": "*"})
    assert refused["status"]["message"] == "Entity ghost does not exist; If-Match: * needs a stored version"
    await site.entities(C, entity("a", note="any"), headers={"If-Match": "*"})
    assert await versions(site, "entities", "a") == [1, 2]


async def test_a_dry_run_answers_the_same_412(site):
    await site.entities(C, entity("a", note="x"), expect=412, headers={"If-Match": '"7"'},
                        params={"validateOnly": "true"})


async def test_batch_items_carry_their_expected_version_and_fail_alone(site):
    body = [relationship("r", "a", "b", expectedVersion=3), relationship("new", "a", "b", expectedVersion=0),
            relationship("ghost", "a", "b", expectedVersion=2)]
    answer = await site.relationships(C, body)
    assert answer["data"]["responses"]["failure"] == [
        {"id": "r", "message": "Relationship r is at version 1, not the expected version 3; it was not written",
         "tracker": answer["data"]["responses"]["failure"][0]["tracker"]},
        {"id": "ghost", "message": "Relationship ghost does not exist; expected version 2",
         "tracker": answer["data"]["responses"]["failure"][1]["tracker"]},
    ]
    assert [i["id"] for i in answer["data"]["responses"]["success"]] == ["new"]
    assert "ETag" not in answer["_headers"]  # not a one-item write


@pytest.mark.parametrize("headers, body, message", [
    ({"If-Match": '"1"'}, [entity("a"), entity("b")],
     "If-Match applies to a request of one item; give each item of a batch its expectedVersion"),
    ({"If-Match": '"1"', "async": "true"}, entity("a"),
     "If-Match applies to synchronous writes (async: false); give the item expectedVersion"),
    ({"If-Match": '"1"', "If-None-Match": "*"}, entity("a"), "Send If-Match or If-None-Match, not both"),
    ({"If-Match": '"1", "2"'}, entity("a"), 'If-Match takes * or one ETag of this service, e.g. "3"'),
    ({"If-Match": '"0"'}, entity("a"), 'If-Match takes * or one ETag of this service, e.g. "3"'),
    ({"If-None-Match": '"1"'}, entity("a"), "If-None-Match on a write takes only * (create only)"),
    ({"If-Match": '"1"'}, entity("a", expectedVersion=1),
     "Give the expected version once: in If-Match or in expectedVersion"),
])
async def test_misused_conditional_headers_are_400(site, headers, body, message):
    refused = await site.entities(C, body, expect=400, headers=headers)
    assert refused["status"]["message"] == message


async def test_expected_version_must_be_a_whole_number_from_zero(site):
    refused = await site.entities(C, entity("a", expectedVersion=-1), expect=400)
    assert refused["errors"][0]["path"] == "/0/expectedVersion"


async def test_of_twenty_writers_expecting_one_version_exactly_one_wins(site):
    etag = await read_etag(site, "relationships", "r")

    async def write(n: int):
        response = await site.client.post(
            "/apollo/er/relationships", json=relationship("r", "a", "b", writer=n),
            headers={**site.headers, "ercollectionid": C, "If-Match": etag})
        return response.status, await response.json()

    answers = await asyncio.gather(*(write(n) for n in range(WRITERS)))
    assert sorted(status for status, _ in answers) == [207] + [412] * (WRITERS - 1)
    assert await versions(site, "relationships", "r") == [1, 2]
    winner = next(body for status, body in answers if status == 207)
    stored = await site.call("GET", "/apollo/er/relationships/r", 200, collection=C,
                             params={"includeSystemData": "true"})
    assert stored["data"][0]["sysData"]["sysTransactionId"] == winner["transactionId"]
    assert {body["status"]["message"] for status, body in answers if status == 412} == {
        "Relationship r is at version 2, not the expected version 1; it was not written"}


@pytest.mark.slow
async def test_of_twenty_batches_expecting_one_version_exactly_one_item_wins(site):
    async def write(n: int):
        return await site.relationships(C, [relationship("r", "a", "b", writer=n, expectedVersion=1),
                                            relationship(f"own-{n}", "a", "b")])

    answers = await asyncio.gather(*(write(n) for n in range(WRITERS)))
    won = [n for n, answer in enumerate(answers)
           if "r" in [i["id"] for i in answer["data"]["responses"]["success"]]]
    assert len(won) == 1
    assert all(len(answer["data"]["responses"]["success"]) == (2 if n in won else 1)
               for n, answer in enumerate(answers))
    assert await versions(site, "relationships", "r") == [1, 2]


async def test_a_delete_with_a_stale_if_match_is_412_and_deletes_nothing(site):
    await site.relationships(C, relationship("r", "a", "b", note="second"))
    refused = await site.call("DELETE", "/apollo/er/relationships/r", 412, collection=C,
                              headers={"If-Match": '"1"'})
    assert refused["status"]["message"] == (
        "Relationship r is at version 2, not the expected version 1; it was not written")
    await site.call("DELETE", "/apollo/er/relationships/r", 200, collection=C, headers={"If-Match": '"2"'})
    assert await versions(site, "relationships", "r") == [1, 2, 3]


async def test_an_entity_delete_checks_if_match_before_its_references(site):
    refused = await site.call("DELETE", "/apollo/er/entities/a", 412, collection=C, headers={"If-Match": '"9"'})
    assert refused["status"]["message"] == "Entity a is at version 1, not the expected version 9; it was not written"
    await site.call("DELETE", "/apollo/er/entities/a", 409, collection=C, headers={"If-Match": '"1"'})
    await site.call("DELETE", "/apollo/er/entities/a", 200, collection=C, headers={"If-Match": '"1"'},
                    params={"cascade": "true"})
    assert await versions(site, "entities", "a") == [1, 2]
    ghost = await site.call("DELETE", "/apollo/er/entities/ghost", 412, collection=C, headers={"If-Match": "*"})
    assert ghost["status"]["message"] == "Entity ghost does not exist; If-Match: * needs a stored version"


async def test_if_none_match_does_not_apply_to_a_delete(site):
    refused = await site.call("DELETE", "/apollo/er/relationships/r", 400, collection=C,
                              headers={"If-None-Match": "*"})
    assert refused["status"]["message"] == "If-None-Match does not apply here; send If-Match with the ETag you read"


async def test_expected_versions_hold_in_an_async_job(site):
    from tests.test_jobs import all_records, wait_for_job

    accepted = await site.call("POST", "/apollo/er/relationships", 202, collection=C, headers={"async": "true"},
                               json_body=[relationship("r", "a", "b", expectedVersion=5),
                                          relationship("r2", "a", "b", expectedVersion=0)])
    await wait_for_job(site, accepted["transactionId"], collection=C)
    records = await all_records(site, accepted["transactionId"], collection=C)
    assert [(r["state"], r["message"]) for r in records[1:]] == [
        ("Failed", "Relationship r is at version 1, not the expected version 5; it was not written"),
        ("Completed", "Relationship upserted successfully")]
