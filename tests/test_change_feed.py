"""The change feed over HTTP, on every storage plugin: sequence numbers in write answers, the feed and its long
poll, the 410 of a trimmed position, and the read-your-writes header. Several processes: test_change_feed_processes.py.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from erapi.keys import storage_key
from tests.api_fixtures import entity, relationship

FEED = "/apollo/er/ercollections/{}/changes"


async def feed(api, collection: str, expect: int = 200, **params) -> dict:
    return await api.call("GET", FEED.format(collection), expect, params={k: str(v) for k, v in params.items()},
                          schema="changes" if expect == 200 else None)


def sequences(body: dict) -> dict[str, int]:
    pairs = (part.split("=") for part in body["_headers"]["X-ER-Sequence"].split(", "))
    return {name: int(number) for name, number in pairs}


async def test_every_write_answers_with_the_sequence_number_of_each_collection_it_changed(api):
    assert sequences(await api.register("c1")) == {"c1": 1}  # the owner's grant is the first change
    assert sequences(await api.register("c2")) == {"c2": 1}
    assert sequences(await api.entities("c1", [entity("a"), entity("b")])) == {"c1": 3}
    assert sequences(await api.entities("c2", entity("x"))) == {"c2": 2}
    written = await api.relationships("c1", relationship("r1", "a", "x", destinationERCollectionId="c2"),
                                      params={"createInverse": "true"})
    assert sequences(written) == {"c1": 4, "c2": 3}  # the inverse lives in the destination's collection
    assert sequences(await api.entities("c1", entity("a"))) == {"c1": 4}  # unchanged: no new number
    failed = await api.entities("c1", entity("bad", entity_type="NoSuchType"))
    assert failed["data"]["responses"]["failure"] and sequences(failed) == {"c1": 4}
    deleted = await api.call("DELETE", "/apollo/er/relationships/r1", 200, collection="c1", schema="delete")
    assert sequences(deleted) == {"c1": 5}
    assert sequences(await api.grant("c1", "bob", ["read"])) == {"c1": 6}


async def test_the_feed_lists_every_change_in_order_with_kind_version_operation_and_document(api):
    await api.register("c1")
    await api.entities("c1", [entity("a"), entity("b")])
    await api.relationships("c1", relationship("r1", "a", "b"))
    await api.call("DELETE", "/apollo/er/relationships/r1", 200, collection="c1")
    await api.grant("c1", "bob", ["read"])
    await api.grant("c1", "bob", [])
    body = await feed(api, "c1")
    assert [(c["sequence"], c["kind"], c["id"], c["version"], c["operation"]) for c in body["data"]] == [
        (1, "grant", "alice", None, "granted"), (2, "entity", "a", 1, "created"), (3, "entity", "b", 1, "created"),
        (4, "relationship", "r1", 1, "created"), (5, "relationship", "r1", 2, "deactivated"),
        (6, "grant", "bob", None, "granted"), (7, "grant", "bob", None, "revoked")]
    assert body["paging"] == {"next": 7, "latest": 7, "firstSequence": 0}
    assert body["data"][4]["document"]["isActive"] is False
    assert body["data"][4]["document"]["sysData"]["sysRelationshipVersion"] == 2
    assert body["data"][5]["document"]["access"] == ["read"]
    page = await feed(api, "c1", after=2, limit=2, includeDocuments="false")
    assert [c["sequence"] for c in page["data"]] == [3, 4] and page["paging"]["next"] == 4
    assert all("document" not in c for c in page["data"])
    assert (await feed(api, "c1", after=7))["data"] == []


async def test_the_feed_needs_a_read_grant_and_well_formed_parameters(api):
    await api.register("c1")
    await api.as_("bob").call("GET", FEED.format("c1"), 403)
    await api.grant("c1", "bob", ["read"])
    assert len((await feed(api.as_("bob"), "c1"))["data"]) == 2
    for params in ({"after": "-1"}, {"limit": "0"}, {"limit": "1001"}, {"wait": "61"}, {"wait": "soon"},
                   {"includeDocuments": "maybe"}, {"since": "1"}):
        await api.call("GET", FEED.format("c1"), 400, params=params)


async def test_a_long_poll_answers_with_the_change_written_while_it_waited(api):
    await api.register("c1")
    waiting = asyncio.create_task(feed(api, "c1", after=1, wait=30))
    await asyncio.sleep(0.1)  # let the poll start waiting
    assert not waiting.done()
    await api.entities("c1", entity("a"))
    body = await asyncio.wait_for(waiting, 20)  # a generous bound: the latency is measured by bench/feed_latency.py
    assert [(c["sequence"], c["id"]) for c in body["data"]] == [(2, "a")]


async def test_a_long_poll_with_nothing_new_answers_empty_when_the_wait_is_over(api):
    await api.register("c1")
    body = await feed(api, "c1", after=1, wait=0.2)
    assert body["data"] == [] and body["paging"]["next"] == 1


async def test_a_trimmed_position_is_410_saying_from_where_the_feed_is_whole(api):
    await api.register("c1")
    await api.entities("c1", [entity(f"e{n}") for n in range(4)])
    storage = api.client.app[storage_key]
    assert await storage.trim_changes("c1", datetime.now(timezone.utc) + timedelta(minutes=1)) == 4
    gone = await feed(api, "c1", 410, after=2)
    assert "after=4" in gone["status"]["message"]
    assert gone["errors"] == [{"path": "/after", "message": "must be at least 4"}]
    body = await feed(api, "c1", after=4)
    assert [c["sequence"] for c in body["data"]] == [5] and body["paging"]["firstSequence"] == 4


async def test_a_read_with_a_sequence_number_not_reached_waits_then_answers_503(app_factory):
    api = await app_factory(changes={"read_your_writes_wait_seconds": 0.2})
    written = await api.register("c1")
    header = written["_headers"]["X-ER-Sequence"]
    await api.call("GET", "/apollo/er/entities", 200, collection="c1", headers={"X-ER-Sequence": header})
    await api.call("GET", "/apollo/er/entities", 200, collection="c1", headers={"X-ER-Sequence": "1"})
    behind = await api.call("GET", "/apollo/er/entities", 503, collection="c1", headers={"X-ER-Sequence": "c1=2"})
    assert "c1=2" in behind["status"]["message"] and behind["_headers"]["Retry-After"] == "1"
    for malformed in ("c1=", "c1=two", "c1=1;c2=1", "=1", "c 1=1"):
        await api.call("GET", "/apollo/er/entities", 400, collection="c1", headers={"X-ER-Sequence": malformed})
