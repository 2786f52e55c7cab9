"""Jobs survive their workers: kill -9 of a service mid-job, and two processes sharing one MongoDB queue."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest

from erapi.app import create_app
from tests.api_fixtures import TEST_SECRET, Api, entity, make_config, relationship, token
from tests.ferretdb import free_port

pytestmark = pytest.mark.mongodb

ENTITY_COUNT = 100
# FerretDB scans a whole collection for every statement that is not an `_id` lookup, so the jobs here are
# small and the chunks smaller still, to give a kill several chunks to land between (docs/OPERATIONS.md)
KILLED_JOB, CHUNK = 400, 20


def chain(count: int, prefix: str = "r") -> list[dict]:
    return [relationship(f"{prefix}{i}", f"e{i % ENTITY_COUNT}", f"e{(i + 1) % ENTITY_COUNT}") for i in range(count)]


class Service:
    """`erapi serve` as a subprocess on MongoDB, killed or stopped by the test."""

    def __init__(self, tmp_path: Path, uri: str, database: str, timeout_ms: int = 5000, extra_toml: str = ""):
        self.port = free_port()
        self.config = tmp_path / "erapi.toml"
        self.config.write_text(
            f'storage = "mongodb"\n[server]\nport = {self.port}\nshutdown_timeout = 5.0\n'
            f'[mongodb]\nuri = "{uri}"\ndatabase = "{database}"\ntimeout_ms = {timeout_ms}\n'
            f'[jobs]\nlease_seconds = 2.0\npoll_interval_seconds = 0.1\nchunk_size = {CHUNK}\n'
            '[acl]\ncache_ttl_seconds = 0.0\n[log]\nlevel = "WARNING"\n' + extra_toml
        )
        self.log = tmp_path / f"erapi-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        environment = {**os.environ, "ERAPI_AUTH_SECRET": TEST_SECRET}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "erapi.cli", "serve", "--config", str(self.config)],
                env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"erapi serve did not get ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base
        self.headers = {"Authorization": f"Bearer {token('alice')}", "Content-Type": "application/json"}

    async def request(self, method: str, path: str, body=None, collection="c1", **headers) -> tuple[int, dict]:
        all_headers = {**self.headers, "ercollectionid": collection, **headers}
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(method, self.base + path, data=data, headers=all_headers) as response:
            return response.status, await response.json()

    async def records(self, transaction_id: str) -> list[dict]:
        found, token_ = [], None
        while True:
            query = f"?transactionid={transaction_id}&limit=1000"
            if token_:
                query += f"&continuationToken={token_}"
            status, body = await self.request("GET", "/apollo/status/logs" + query)
            assert status == 200, body
            found.extend(body["data"])
            token_ = body["paging"]["continuationToken"]
            if token_ is None:
                return found


async def version_counts(uri: str, database: str, ids: list[str]) -> dict[str, list[int]]:
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri)
    try:
        history = client[database]["relationships_history"]
        versions: dict[str, list[int]] = {i: [] for i in ids}
        async for document in history.find({"ercollectionid": "c1", "id": {"$in": ids}}):
            versions[document["id"]].append(document["sysData"]["sysRelationshipVersion"])
        return {i: sorted(v) for i, v in versions.items()}
    finally:
        await client.close()


@pytest.fixture
def database(mongodb_uri):
    name = f"erapi_kill_{uuid.uuid4().hex[:10]}"
    yield name
    from pymongo import MongoClient

    with MongoClient(mongodb_uri) as client:
        client.drop_database(name)


async def test_kill_9_mid_job_then_restart_applies_every_item_exactly_once(tmp_path, mongodb_uri, database):
    service = Service(tmp_path, mongodb_uri, database)
    items = chain(KILLED_JOB)
    try:
        await service.start()
        async with aiohttp.ClientSession() as session:
            client = Client(session, service.url)
            assert (await client.request("POST", "/apollo/collections", {"collectionId": "c1"}))[0] == 201
            status, _ = await client.request("POST", "/apollo/er/entities",
                                             [entity(f"e{i}") for i in range(ENTITY_COUNT)])
            assert status == 207
            status, accepted = await client.request("POST", "/apollo/er/relationships", items,
                                                    **{"async": "true"})
            assert status == 202, accepted
            transaction_id = accepted["transactionId"]
            # wait until the worker is mid-job: some items done, some not
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                _, body = await client.request("GET", f"/apollo/status/logs?transactionid={transaction_id}&limit=1")
                counts = body["data"][0]["jobData"]
                if counts["done"] > 0 and counts["pending"] > 0:
                    break
                await asyncio.sleep(0.05)
            assert 0 < counts["done"] < KILLED_JOB, counts
        service.kill()

        await service.start()
        async with aiohttp.ClientSession() as session:
            client = Client(session, service.url)
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                _, body = await client.request("GET", f"/apollo/status/logs?transactionid={transaction_id}&limit=1")
                job = body["data"][0]
                if job["state"] == "Completed":
                    break
                await asyncio.sleep(0.2)
            assert job["state"] == "Completed", job
            assert job["jobData"] == {"total": KILLED_JOB, "done": KILLED_JOB, "failed": 0, "pending": 0}
            records = [r for r in await client.records(transaction_id) if r["requestObject"] == "Relationship"]
        assert len(records) == KILLED_JOB
        assert {r["state"] for r in records} == {"Completed"}
        for record in records:
            assert [s["state"] for s in record["stateHistory"]].count("Completed") == 1
        versions = await version_counts(mongodb_uri, database, [item["id"] for item in items])
        assert all(v == [1] for v in versions.values()), {k: v for k, v in versions.items() if v != [1]}
    finally:
        service.stop()


async def test_two_processes_share_one_queue_and_apply_every_item_once(aiohttp_client, mongodb_uri, database):
    settings = {"uri": mongodb_uri, "database": database, "write_concern": "majority", "journal": True,
                "timeout_ms": 5000}
    jobs = {"poll_interval_seconds": 0.05, "lease_seconds": 5.0, "chunk_size": CHUNK}
    first = Api(await aiohttp_client(create_app(make_config("mongodb", settings, jobs={**jobs, "workers": 0}))))
    await first.register("c1")
    await first.entities("c1", [entity(f"e{i}") for i in range(ENTITY_COUNT)])
    accepted = await first.call("POST", "/apollo/er/relationships", 202, collection="c1", json_body=chain(200),
                                headers={"async": "true"})
    # two more "processes", each with its own client and its own worker, drain the queue together
    workers = [await aiohttp_client(create_app(make_config("mongodb", settings, jobs=jobs))) for _ in range(2)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = await first.status_logs("c1", {"transactionid": accepted["transactionId"], "limit": "1"})
        if logs["data"][0]["state"] == "Completed":
            break
        await asyncio.sleep(0.1)
    assert logs["data"][0]["jobData"] == {"total": 200, "done": 200, "failed": 0, "pending": 0}
    versions = await version_counts(mongodb_uri, database, [f"r{i}" for i in range(200)])
    assert all(v == [1] for v in versions.values())
    assert len(workers) == 2
