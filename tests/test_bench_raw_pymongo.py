"""bench/raw_pymongo.py does the service's database work: one raw batch sends the commands one request sends.

The bench's MongoDB section compares the service on the mongodb plugin with the raw-PyMongo loop, which is
only a fair ceiling if each batch of the loop sends what the plugin sends for one 100-relationship request
of new ids: the same commands, in the same order, on the same collections, with the same numbers of ids,
documents and statements. Both sides are watched with PyMongo's command monitoring; on FerretDB both take
the plugin's FerretDB path (find, insert, replace by ``_id``), on MongoDB its conditional upserts.
Not a timed test.
"""

from __future__ import annotations

import functools
import uuid

import orjson
import pytest
from pymongo import AsyncMongoClient, MongoClient, monitoring

import storage_plugins.mongodb as mongodb_plugin
from bench import raw_pymongo as raw
from bench import workload
from erapi.app import create_app
from tests.api_fixtures import Api, make_config
from tests.command_monitoring import DatabaseWindow

pytestmark = pytest.mark.mongodb


class Commands(DatabaseWindow):
    """The shape of every command sent to one database while recording: name, collection, how many ids
    (a find's ``$in``), documents (insert) or statements (update), and the fields of filter and projection."""

    def fresh(self) -> list[tuple]:
        return []

    def record(self, shapes: list[tuple], event: monitoring.CommandStartedEvent) -> None:
        command, name = event.command, event.command_name
        collection = command["collection"] if name == "getMore" else command.get(name)
        count, fields = None, ()
        if name == "find":
            wanted = command.get("filter", {}).get("id")
            count = len(wanted["$in"]) if isinstance(wanted, dict) and "$in" in wanted else None
            fields = (tuple(sorted(command.get("filter", {}))), tuple(sorted(command.get("projection", {}))))
        elif name == "insert":
            count = len(command["documents"])
        elif name == "update":
            count = len(command["updates"])
            fields = tuple(sorted({(key, statement.get("upsert", False))
                                   for statement in command["updates"] for key in statement["q"]}))
        shapes.append((name, collection, count, fields))


@pytest.fixture
def databases(mongodb_uri):
    """Two scratch databases (the service's and the raw loop's), dropped at teardown."""
    names = [f"erapi_rawcmp_{uuid.uuid4().hex[:10]}", f"erapi_rawcmp_raw_{uuid.uuid4().hex[:10]}"]
    yield names
    with MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        for name in names:
            client.drop_database(name)


async def test_one_raw_batch_sends_the_commands_of_one_service_request(aiohttp_client, monkeypatch, mongodb_uri,
                                                                       databases):
    service_db, raw_db = databases
    commands = Commands()
    # the plugin's client, and only it, reports its commands here
    monkeypatch.setattr(mongodb_plugin, "AsyncMongoClient",
                        functools.partial(AsyncMongoClient, event_listeners=[commands]))
    settings = {"uri": mongodb_uri, "database": service_db, "write_concern": "majority", "journal": True,
                "timeout_ms": 5000}
    # As the bench runs it, but with no job worker or webhook delivery (their idle polling would land in the
    # window) and an ACL
    # cache that cannot expire mid-test (the bench's service looks the ACL up once per 5 s, not per request).
    app = create_app(make_config("mongodb", settings, jobs={"workers": 0}, webhooks={"deliver": False},
                                  acl={"cache_ttl_seconds": 600}))
    api = Api(await aiohttp_client(app))
    await api.register(workload.COLLECTION)
    for batch in workload.entity_batches():
        await api.entities(workload.COLLECTION, batch)
    items = orjson.loads(workload.render(workload.relationship_template(), 0, workload.tag(0x0B)))
    with commands.window(service_db) as service:
        body = await api.relationships(workload.COLLECTION, items, headers={"async": "false"})
    assert len(body["data"]["responses"]["success"]) == workload.ITEMS_PER_REQUEST

    server = await raw.prepare(mongodb_uri, raw_db, workload.COLLECTION, "majority", True)
    client = AsyncMongoClient(mongodb_uri, serverSelectionTimeoutMS=5000, event_listeners=[commands])
    try:
        db = client.get_database(raw_db, write_concern=raw.write_concern_of("majority", True))
        batch = raw.Batches(workload.COLLECTION).next(workload.tag(0x40))
        with commands.window(raw_db) as raw_batch:
            await raw.one_batch(db, workload.COLLECTION, batch, server, server.update_lock())
    finally:
        await client.close()

    assert raw_batch == service, f"raw batch on {server.name}:\n{raw_batch}\nservice request:\n{service}"
    written = [(name, collection) for name, collection, _, _ in service if name in ("insert", "update")]
    assert ("insert", "relationships_history") in written and ("insert", "status_segments") in written
    # the current view is written the plugin's way on this server
    assert (("insert", "relationships") in written) == (not server.atomic_updates)
    assert (("update", "relationships") in written) == server.atomic_updates
