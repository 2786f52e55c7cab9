"""The change feed and read-your-writes across two `erapi serve` processes on one MongoDB (FerretDB in CI).

10 writers through both processes while a consumer follows the feed, is killed, and resumes
from its last sequence number; then write through one process and read through the other with X-ER-Sequence.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from tests.api_fixtures import entity, token
from tests.test_jobs_durability import Client, Service, database  # noqa: F401 (fixture)

pytestmark = [pytest.mark.mongodb, pytest.mark.slow]
# Each writer writes its BATCH entities BATCHES times over (a new version each time). The acceptance figure is 10
# writers x 1,000 changes (ERAPI_FEED_BATCHES=20 ERAPI_FEED_BATCH=50); FerretDB scans a whole collection for every
# query that is not an _id lookup and needs over 10 minutes for it on the shared test machine, so CI runs 10 x 100.
WRITERS = 10
BATCHES, BATCH = int(os.environ.get("ERAPI_FEED_BATCHES", "10")), int(os.environ.get("ERAPI_FEED_BATCH", "10"))
FEED = "/apollo/er/ercollections/c1/changes"


async def two_services(tmp_path, uri: str, database: str) -> list[Service]:
    services = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        service = Service(tmp_path / name, uri, database)
        # the default ACL cache, so that read-your-writes has a stale grant to overcome
        service.config.write_text(service.config.read_text().replace("cache_ttl_seconds = 0.0",
                                                                     "cache_ttl_seconds = 30.0"))
        services.append(service)
    await asyncio.gather(*(service.start() for service in services))
    return services


async def writer(client: Client, number: int) -> None:
    for batch in range(BATCHES):
        items = [entity(f"w{number}-{item}", entityName=f"round {batch}") for item in range(BATCH)]
        status, body = await client.request("POST", "/apollo/er/entities", items)
        assert status == 207 and len(body["data"]["responses"]["success"]) == BATCH, body


async def consume(client: Client, after: int, seen: list[dict], stop_at: int | None = None) -> int:
    """Follow the feed from ``after`` with long polls, appending what it reads to ``seen``; return the position
    reached once ``stop_at`` changes are seen (None: until the feed is drained and nothing comes for 5 s)."""
    while stop_at is None or len(seen) < stop_at:
        status, body = await client.request("GET", f"{FEED}?after={after}&limit=1000&wait=5")
        assert status == 200, body
        if not body["data"] and stop_at is None:
            return after
        seen.extend(body["data"])
        after = body["paging"]["next"]
    return after


async def test_ten_writers_through_two_processes_make_one_gapless_feed_a_resumed_consumer_reads_whole(
        tmp_path, mongodb_uri, database):
    services = await two_services(tmp_path, mongodb_uri, database)
    try:
        async with aiohttp.ClientSession() as session:
            a, b = Client(session, services[0].url), Client(session, services[1].url)
            assert (await a.request("POST", "/apollo/collections", {"collectionId": "c1"}))[0] == 201
            seen: list[dict] = []
            # the consumer follows through process b while the writers write through both
            killed_at = asyncio.create_task(consume(b, 1, seen, stop_at=WRITERS * BATCHES * BATCH // 3))
            await asyncio.gather(*(writer((a, b)[number % 2], number) for number in range(WRITERS)))
            position = await killed_at  # "killed" here: it resumes from the last number it processed
            position = await consume(a, position, seen)
            status, whole = await b.request("GET", f"{FEED}?after=0&limit=1000")
            everything = []
            while whole["data"]:
                everything.extend(whole["data"])
                status, whole = await b.request("GET", f"{FEED}?after={whole['paging']['next']}&limit=1000")
    finally:
        for service in services:
            service.stop()
    numbers = [change["sequence"] for change in everything]
    assert numbers == sorted(set(numbers)) and len(numbers) == 1 + WRITERS * BATCHES * BATCH
    written = {(f"w{n}-{i}", version) for n in range(WRITERS) for i in range(BATCH) for version in range(1, BATCHES + 1)}
    assert {(change["id"], change["version"]) for change in everything if change["kind"] == "entity"} == written
    assert [change["sequence"] for change in seen] == numbers[1:]  # the consumer: the same set, once each
    assert position == numbers[-1]


async def send(session: aiohttp.ClientSession, url: str, method: str, body=None, subject: str = "alice",
               **headers: str) -> tuple[int, dict, str | None]:
    """The status, body and X-ER-Sequence header of one request as ``subject`` on collection c1."""
    headers = {"Authorization": f"Bearer {token(subject)}", "ercollectionid": "c1", **headers}
    async with session.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("X-ER-Sequence")


async def test_a_write_through_one_process_is_read_through_the_other_with_its_sequence_number(
        tmp_path, mongodb_uri, database):
    services = await two_services(tmp_path, mongodb_uri, database)
    a, b = (service.url for service in services)
    try:
        async with aiohttp.ClientSession() as session:
            assert (await send(session, f"{a}/apollo/collections", "POST", {"collectionId": "c1"}))[0] == 201
            for round_ in range(40):
                document = entity(f"e{round_ % 5}", entityName=f"round {round_}")
                status, _, written = await send(session, f"{a}/apollo/er/entities", "POST", document)
                assert status == 207
                status, read, _ = await send(session, f"{b}/apollo/er/entities/e{round_ % 5}", "GET",
                                             **{"X-ER-Sequence": written})
                assert status == 200 and read["data"][0]["entityName"] == f"round {round_}", read
            for round_ in range(10):  # grants: process b holds the collection's grants in its cache (30 s)
                reader = f"reader{round_}"
                status, _, written = await send(session, f"{a}/apollo/collections/c1/acl", "PUT",
                                                {"principal": reader, "access": ["read"]})
                assert status == 200
                status, read, _ = await send(session, f"{b}/apollo/er/entities/e0", "GET", subject=reader,
                                             **{"X-ER-Sequence": written})
                assert status == 200, read
    finally:
        for service in services:
            service.stop()
