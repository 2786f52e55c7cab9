"""?validateOnly=true: the 207 the same request would get, sync or async, and nothing written of any kind."""

from __future__ import annotations

import pytest

from erapi.keys import storage_key
from erapi.openapi import EXAMPLE_RELATIONSHIP
from tests.api_fixtures import Api, entity, relationship
from tests.test_jobs import all_records, wait_for_job
from tests.write_options_helpers import outcome, stored_state

COLLECTIONS = ["august_14_81", "august_14_8"]
HERE, THERE = COLLECTIONS
DRY = {"validateOnly": "true"}
SOURCE, DESTINATION = "ac4d999e-3798-11e8-a1af-c8e0eb18b031", "ac4d8cd8-3798-11e8-a527-c8e0eb18b031"


async def dry_then_real(api: Api, kind: str, body, **kwargs) -> tuple[dict, dict]:
    """The dry run's answer (after checking it stored nothing at all), then the real request's."""
    storage = api.client.app[storage_key]
    before = await stored_state(storage, COLLECTIONS)
    dry = await api.call("POST", f"/apollo/er/{kind}", 207, collection=HERE, json_body=body, schema="batch",
                         params=DRY, **kwargs)
    assert await stored_state(storage, COLLECTIONS) == before
    assert dry["validateOnly"] is True
    assert all(item["tracker"] is None for items in dry["data"]["responses"].values() for item in items)
    assert dry["_headers"]["X-Transaction-Id"] == dry["transactionId"]
    real = await api.call("POST", f"/apollo/er/{kind}", 207, collection=HERE, json_body=body, schema="batch",
                          **kwargs)
    assert "validateOnly" not in real
    return dry, real


async def test_the_contract_example_dry_run_answers_the_real_207_and_writes_nothing(building):
    dry, real = await dry_then_real(building, "relationships", EXAMPLE_RELATIONSHIP)
    assert outcome(dry) == outcome(real)
    assert outcome(real)["success"] == [(EXAMPLE_RELATIONSHIP["id"], "Relationship upserted successfully")]
    assert set(dry) == set(real) | {"validateOnly"}


@pytest.fixture
async def mixed_relationships(building) -> list[dict]:
    """A batch with every per-item failure of a relationship upsert, and three successes (a new one, an update, one
    typed by its Brick name alone)."""
    await building.entities(THERE, entity("sensor-1", "BRICK_0_4__Temperature_Sensor"))
    await building.relationships(HERE, [
        relationship("existing", SOURCE, DESTINATION, destinationERCollectionId=THERE),
        relationship("typed", SOURCE, DESTINATION, destinationERCollectionId=THERE),
    ])
    other_type = "BRICK_0_4__feeds_Equipment_Equipment"
    return [
        relationship("new", SOURCE, DESTINATION, destinationERCollectionId=THERE),
        relationship("existing", SOURCE, DESTINATION, destinationERCollectionId=THERE, note="updated"),
        relationship("unknown-type", SOURCE, DESTINATION, relationship_type="BRICK_0_4__nope"),
        relationship("wrong-source-collection", SOURCE, DESTINATION, sourceERCollectionId=THERE),
        relationship("unreadable-destination", SOURCE, DESTINATION, destinationERCollectionId="nowhere"),
        relationship("missing-source", "nobody", DESTINATION, destinationERCollectionId=THERE),
        relationship("missing-destination", SOURCE, "nobody", destinationERCollectionId=THERE),
        relationship("wrong-class", SOURCE, "sensor-1", destinationERCollectionId=THERE),
        relationship("typed", SOURCE, DESTINATION, destinationERCollectionId=THERE, relationship_type=other_type),
        relationship("derived", SOURCE, DESTINATION, destinationERCollectionId=THERE,
                     brickRelationshipName="somethingElse"),
        relationship("stale", SOURCE, DESTINATION, destinationERCollectionId=THERE, expectedVersion=7),
        by_brick_name("brick-unknown", "BRICK_1_4__nope"),
        by_brick_name("brick-no-fit", "BRICK_1_4__isFedBy", destination="sensor-1"),
        by_brick_name("brick-chosen", "BRICK_1_4__isFedBy"),
        relationship("new", SOURCE, DESTINATION, destinationERCollectionId=THERE),
    ]


def by_brick_name(relationship_id: str, brick_name: str, destination: str = DESTINATION) -> dict:
    """An item naming only its Brick relationship: the service picks the catalog type from the ends' classes."""
    item = relationship(relationship_id, SOURCE, destination, destinationERCollectionId=THERE,
                        brickRelationshipType=brick_name)
    del item["relationshipType"]
    return item


async def test_a_batch_with_every_per_item_failure_dry_runs_to_the_real_answer(building, mixed_relationships):
    dry, real = await dry_then_real(building, "relationships", mixed_relationships)
    assert outcome(dry) == outcome(real)
    assert len(outcome(real)["success"]) == 3 and len(outcome(real)["failure"]) == 12
    assert len({item[1] for item in outcome(real)["failure"]}) == 12  # every failure is a different rule
    assert ("brick-chosen", "Relationship upserted successfully",
            ("relationshipType", "BRICK_1_4__isFedBy_HVAC_Equipment_HVAC_Equipment")) in outcome(dry)["success"]


async def test_create_inverse_dry_runs_the_inverses_too(building):
    body = relationship("fed", SOURCE, DESTINATION, destinationERCollectionId=THERE)
    storage = building.client.app[storage_key]
    before = await stored_state(storage, COLLECTIONS)
    params = {"createInverse": "true"}
    dry = await building.relationships(HERE, body, params={**params, **DRY})
    assert await stored_state(storage, COLLECTIONS) == before
    real = await building.relationships(HERE, body, params=params)
    assert outcome(dry) == outcome(real) and len(outcome(real)["success"]) == 2


async def test_entities_with_every_per_item_failure(building):
    await building.entities(HERE, entity("typed"))
    body = [entity("fresh"), entity("typed", note="update"), entity("bad-type", "BRICK_0_4__Nope"),
            entity("typed", "BRICK_0_4__VAV"), entity("derived", brickEntityType="BRICK_0_4__Point"),
            entity("fresh"), entity("stale", expectedVersion=3)]
    dry, real = await dry_then_real(building, "entities", body)
    assert outcome(dry) == outcome(real)
    assert [item[0] for item in outcome(real)["success"]] == ["fresh", "typed"]
    assert len({item[1] for item in outcome(real)["failure"]}) == 5


@pytest.mark.slow
async def test_an_async_dry_run_answers_207_with_the_outcomes_the_job_records(building, mixed_relationships):
    storage = building.client.app[storage_key]
    before = await stored_state(storage, COLLECTIONS)
    async_header = {"async": "true"}
    dry = await building.relationships(HERE, mixed_relationships, params=DRY, headers=async_header)
    assert await stored_state(storage, COLLECTIONS) == before
    accepted = await building.relationships(HERE, mixed_relationships, expect=202, headers=async_header)
    await wait_for_job(building, accepted["transactionId"], collection=HERE)
    records = (await all_records(building, accepted["transactionId"], collection=HERE))[1:]  # the job first
    recorded = [(r["serviceData"]["relationshipId"], r["state"], r["message"]) for r in records]
    answered = [(item["id"], state, item["message"])
                for key, state in (("success", "Completed"), ("failure", "Failed"))
                for item in dry["data"]["responses"][key]]
    assert sorted(recorded) == sorted(answered) and len(recorded) == len(mixed_relationships)


async def test_validate_only_takes_true_or_false(building):
    body = await building.relationships(HERE, EXAMPLE_RELATIONSHIP, expect=400, params={"validateOnly": "yes"})
    assert body["status"]["message"] == "The query parameter validateOnly must be true or false"
