"""The MongoDB plugin in operation: commands per request, two instances on one database, the database
going down and coming back, and data outliving the service."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid

import pytest
from pymongo import monitoring

from erapi.app import create_app
from erapi.keys import storage_key
from tests.api_fixtures import Api, entity, make_config, relationship
from tests.command_monitoring import DatabaseWindow

pytestmark = pytest.mark.mongodb


class CommandCounter(DatabaseWindow):
    """Counts the commands sent to one database while a window is open (PyMongo's command monitoring)."""

    def fresh(self) -> collections.Counter[str]:
        return collections.Counter()

    def record(self, commands: collections.Counter[str], event: monitoring.CommandStartedEvent) -> None:
        commands[event.command_name] += 1


COUNTER = CommandCounter()
monitoring.register(COUNTER)  # applies to every client created from now on; it counts only inside a window


@pytest.fixture
def mongodb_settings(mongodb_uri):
    database = f"erapi_ops_{uuid.uuid4().hex[:10]}"
    yield {"uri": mongodb_uri, "database": database, "write_concern": "majority", "journal": True,
           "timeout_ms": 5000}
    from pymongo import MongoClient

    with MongoClient(mongodb_uri) as client:
        client.drop_database(database)


async def mongodb_api(aiohttp_client, settings, **sections) -> Api:
    return Api(await aiohttp_client(create_app(make_config("mongodb", settings, **sections))))


async def test_a_1_item_and_a_100_item_request_send_the_same_commands(aiohttp_client, mongodb_settings):
    # no job worker and no webhook delivery: their polling (for chunks, for subscriptions to lease, once a
    # second) would land in the counting window
    api = await mongodb_api(aiohttp_client, mongodb_settings, jobs={"workers": 0}, webhooks={"deliver": False})
    for collection in ("src", "dst"):
        await api.register(collection)
        await api.entities(collection, [entity(f"e{i}") for i in range(100)])
        await api.entities(collection, entity("e100"))

    def batch(prefix, count):
        return [relationship(f"{prefix}{i}", f"e{i}", f"e{i + 1}", destinationERCollectionId="dst")
                for i in range(count)]

    with COUNTER.window(mongodb_settings["database"]) as one:
        await api.relationships("src", batch("one", 1))
    with COUNTER.window(mongodb_settings["database"]) as hundred:
        body = await api.relationships("src", batch("hundred", 100))
    assert len(body["data"]["responses"]["success"]) == 100
    assert one == hundred, (one, hundred)
    # grants of both collections, entities of both, current relationships, claim, the change feed's counter
    # and records, publish, status records with the read of their ids that stands in for a unique index (status
    # segments hold their ids in an array; the publish reads once more first on FerretDB): a handful, whatever
    # the batch size
    assert sum(one.values()) <= 12


async def test_two_instances_twenty_writers_give_versions_2_to_21(aiohttp_client, mongodb_settings):
    first = await mongodb_api(aiohttp_client, mongodb_settings)
    second = await mongodb_api(aiohttp_client, mongodb_settings)
    await first.register("c1")
    await first.entities("c1", [entity("a"), entity("b")])
    await first.relationships("c1", relationship("r1", "a", "b"))
    writers = [(first if n % 2 else second).relationships("c1", relationship("r1", "a", "b", note=f"w{n}"))
               for n in range(20)]
    results = await asyncio.gather(*writers)
    assert all(len(result["data"]["responses"]["success"]) == 1 for result in results)
    versions = await first.client.app[storage_key].get_versions("relationships", "c1", "r1")
    assert [v["sysData"]["sysRelationshipVersion"] for v in versions] == list(range(1, 22))
    assert sorted(v["note"] for v in versions[1:]) == sorted(f"w{n}" for n in range(20))
    [current] = (await second.relationship("c1", "r1", params={"includeSystemData": "true"}))["data"]
    assert current["sysData"]["sysRelationshipVersion"] == 21


async def test_readyz_follows_the_database_down_and_up_without_a_restart(ferretdb, aiohttp_client):
    settings = {"uri": ferretdb.uri, "database": "erapi_down_up", "write_concern": "majority", "journal": True,
                "timeout_ms": 1000}
    api = await mongodb_api(aiohttp_client, settings)
    await api.register("c1")
    await api.entities("c1", entity("a"))
    assert (await api.client.get("/readyz")).status == 200

    ferretdb.stop()
    response = await api.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["status"] == {"message": "storage is not answering", "code": "503"}
    down = await api.call("POST", "/apollo/er/entities", 503, collection="c1", json_body=entity("b"))
    assert down["status"]["message"] == "The storage backend is unavailable; retry later"

    ferretdb.start()
    deadline = time.monotonic() + 30
    while (await api.client.get("/readyz")).status != 200:
        assert time.monotonic() < deadline, "readyz did not come back within 30 s"
        await asyncio.sleep(0.2)
    await api.entities("c1", entity("b"))
    got = await api.call("GET", "/apollo/er/entities/a", 200, collection="c1")
    assert got["data"][0]["id"] == "a"


async def test_data_and_trackers_survive_a_restart_of_the_service(aiohttp_client, mongodb_settings):
    before = await mongodb_api(aiohttp_client, mongodb_settings)
    for collection in ("august_14_81", "august_14_8"):
        await before.register(collection)
    await before.entities("august_14_81", entity("ac4d999e-3798-11e8-a1af-c8e0eb18b031"))
    await before.entities("august_14_8", entity("ac4d8cd8-3798-11e8-a527-c8e0eb18b031"))
    body = await before.relationships("august_14_81", relationship(
        "5091e806-39b1-11e8-ae2c-c8e0eb18b031", "ac4d999e-3798-11e8-a1af-c8e0eb18b031",
        "ac4d8cd8-3798-11e8-a527-c8e0eb18b031", sourceERCollectionId="august_14_81",
        destinationERCollectionId="august_14_8"))
    assert body["status"]["message"] == "Total number of Relationships Upserted:  1."
    await before.client.close()  # the service stops; a new one starts on the same database

    after = await mongodb_api(aiohttp_client, mongodb_settings)
    [stored] = (await after.relationship("august_14_81", "5091e806-39b1-11e8-ae2c-c8e0eb18b031"))["data"]
    assert stored["destinationERCollectionId"] == "august_14_8"
    logs = await after.status_logs("august_14_81", {"transactionid": body["transactionId"]})
    assert logs["data"][0]["state"] == "Completed"
    conflict = await after.call("POST", "/apollo/collections", 409, json_body={"collectionId": "august_14_81"})
    assert conflict["status"]["message"] == "ERCollection august_14_81 already exists"
