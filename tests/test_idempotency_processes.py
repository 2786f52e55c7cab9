"""Idempotency-Key across service processes and a restart: the key and its answer live in MongoDB."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from tests.api_fixtures import entity, relationship
from tests.test_jobs_durability import Client, Service, database, version_counts  # noqa: F401 (fixture)

pytestmark = [pytest.mark.mongodb, pytest.mark.slow]
RETRIES = 20
BATCH = [relationship(f"r{i}", f"e{i}", f"e{i + 1}") for i in range(10)]


async def retry(session: aiohttp.ClientSession, service: Service, key: str) -> tuple[int, dict]:
    return await Client(session, service.url).request("POST", "/apollo/er/relationships", BATCH,
                                                      **{"Idempotency-Key": key})


async def test_retries_spread_over_two_processes_and_a_restart_get_one_answer(tmp_path, mongodb_uri, database):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    services = [Service(tmp_path / name, mongodb_uri, database) for name in ("one", "two")]
    try:
        await asyncio.gather(*(service.start() for service in services))
        async with aiohttp.ClientSession() as session:
            client = Client(session, services[0].url)
            assert (await client.request("POST", "/apollo/collections", {"collectionId": "c1"}))[0] == 201
            status, _ = await client.request("POST", "/apollo/er/entities", [entity(f"e{i}") for i in range(11)])
            assert status == 207
            answers = await asyncio.gather(*(retry(session, services[n % 2], "one-key") for n in range(RETRIES)))
        assert {status for status, _ in answers} == {207}
        assert all(body == answers[0][1] for _, body in answers)
        for service in services:
            service.stop()
        await services[1].start()  # a restart: the answer is still there
        async with aiohttp.ClientSession() as session:
            status, after_restart = await retry(session, services[1], "one-key")
        assert (status, after_restart) == (207, answers[0][1])
        versions = await version_counts(mongodb_uri, database, [item["id"] for item in BATCH])
        assert versions == {item["id"]: [1] for item in BATCH}
    finally:
        for service in services:
            service.stop()
