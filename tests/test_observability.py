"""What an operator sees: the JSON log lines (access, jobs, audit, aiohttp's own) and, filtered like with jq."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import uuid

import orjson
import pytest
import structlog

from erapi.logs import configure_logging
from tests.api_fixtures import Api, entity, relationship
from tests.test_jobs import FAST_JOBS, submit, wait_for_job

ENTITIES = "/apollo/er/entities"


class LogLines:
    """The service's output as `erapi serve` writes it (configure_logging), parsed line by line like jq does."""

    def __init__(self, buffer: io.BytesIO):
        self.buffer = buffer

    def where(self, **fields) -> list[dict]:
        lines = [orjson.loads(line) for line in self.buffer.getvalue().splitlines()]
        return [line for line in lines if all(line.get(name) == value for name, value in fields.items())]

    async def access_lines(self, **fields) -> list[dict]:
        # aiohttp writes the access line in the server's task right after the response: let it run first
        await asyncio.sleep(0)
        return self.where(event="request", **fields)

    async def eventually(self, timeout: float = 30.0, **fields) -> list[dict]:
        """The lines matching ``fields`` once there are any: a worker logs after the write others may see first."""
        deadline = time.monotonic() + timeout
        while not (lines := self.where(**fields)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return lines


@pytest.fixture
def logs():
    saved, root = structlog.get_config(), logging.getLogger()
    level = root.level
    buffer = io.BytesIO()
    handler = configure_logging("INFO", stream=buffer)
    structlog.configure(cache_logger_on_first_use=False)  # no logger may keep writing into the buffer afterwards
    yield LogLines(buffer)
    root.removeHandler(handler)
    root.setLevel(level)
    structlog.configure(**saved)


async def test_a_401_and_a_403_each_leave_exactly_one_access_line(api: Api, logs: LogLines):
    stranger = await api.as_("mallory", "apollo_read").call("POST", ENTITIES, 403, collection="c1",
                                                             json_body=entity("e1"))
    anonymous = await api.client.get(ENTITIES, headers={"ercollectionid": "c1"})
    assert anonymous.status == 401

    [refused] = await logs.access_lines(request_id=anonymous.headers["X-Request-Id"])
    assert (refused["method"], refused["route"], refused["status"]) == ("GET", ENTITIES, 401)
    assert "principal" not in refused and refused["duration_ms"] >= 0 and refused["level"] == "info"
    [forbidden] = await logs.access_lines(request_id=stranger["_headers"]["X-Request-Id"])
    assert (forbidden["method"], forbidden["route"], forbidden["status"]) == ("POST", ENTITIES, 403)
    assert forbidden["principal"] == "mallory" and forbidden["ercollectionid"] == "c1"
    assert len(await logs.access_lines()) == 2


async def test_the_access_line_names_the_route_template_and_the_transaction(api: Api, logs: LogLines):
    await api.register("c1")
    written = await api.entities("c1", entity("ahu-1"))
    read = await api.call("GET", f"{ENTITIES}/ahu-1", 200, collection="c1")
    missing = await api.call("GET", "/apollo/nowhere/ahu-1", 404)

    [write] = await logs.access_lines(request_id=written["_headers"]["X-Request-Id"])
    assert write["status"] == 207 and write["transaction_id"] == written["transactionId"]
    assert write["principal"] == "alice" and write["ercollectionid"] == "c1"
    [get] = await logs.access_lines(request_id=read["_headers"]["X-Request-Id"])
    assert (get["route"], get["status"]) == (f"{ENTITIES}/{{entityId}}", 200)
    assert "transaction_id" not in get
    [unknown] = await logs.access_lines(request_id=missing["_headers"]["X-Request-Id"])
    assert (unknown["route"], unknown["status"]) == ("unmatched", 404)


async def test_a_replayed_write_names_the_first_transaction_in_its_access_line(api: Api, logs: LogLines):
    await api.register("c1")
    retry = {"Idempotency-Key": "retry-me-1"}
    first = await api.entities("c1", entity("ahu-1"), headers=retry)
    replayed = await api.entities("c1", entity("ahu-1"), headers=retry)

    assert replayed["transactionId"] == first["transactionId"]
    await logs.access_lines()
    lines = [(line["event"], line["request_id"]) for line in logs.where(transaction_id=first["transactionId"])]
    first_id, replay_id = first["_headers"]["X-Request-Id"], replayed["_headers"]["X-Request-Id"]
    assert lines == [("transaction", first_id), ("request", first_id), ("request", replay_id)]


async def test_an_x_request_id_comes_back_and_marks_every_line_of_its_request(api: Api, logs: LogLines):
    await api.register("c1")
    request_id = "Root=1-5759e988-bd862e3fe1be46a9;Parent=53995c3f42cd8ad8"
    written = await api.entities("c1", entity("ahu-1"), headers={"X-Request-Id": request_id})

    assert written["_headers"]["X-Request-Id"] == request_id
    await logs.access_lines()
    lines = logs.where(request_id=request_id)
    assert [line["event"] for line in lines] == ["transaction", "request"]
    assert {line["transaction_id"] for line in lines} == {written["transactionId"]}


@pytest.mark.parametrize("supplied", ["two words", "x" * 129, "quote\"d", ""])
async def test_a_malformed_x_request_id_is_replaced_by_a_generated_one(api: Api, logs: LogLines, supplied: str):
    body = await api.call("GET", "/healthz", 200, headers={"X-Request-Id": supplied})

    generated = body["_headers"]["X-Request-Id"]
    assert generated != supplied and uuid.UUID(generated)
    [line] = await logs.access_lines(route="/healthz")
    assert line["request_id"] == generated


async def test_an_async_job_is_followed_through_the_logs_by_its_transaction_id(app_factory, logs: LogLines):
    api = await app_factory(jobs={**FAST_JOBS, "chunk_size": 40})
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(10)])
    items = [relationship(f"r{i}", f"e{i % 10}", f"e{(i + 1) % 10}") for i in range(100)]
    items[99] = relationship("r99", "e1", "nowhere")  # one item fails: the chunk and the job say so
    transaction_id = (await submit(api, items))["transactionId"]
    await wait_for_job(api, transaction_id)
    await logs.eventually(event="job done", transaction_id=transaction_id)

    job = logs.where(transaction_id=transaction_id)
    [accepted] = [line for line in job if line["event"] == "job accepted"]
    assert (accepted["items"], accepted["chunks"], accepted["kind"]) == (100, 3, "relationships")
    assert accepted["audit"] is True and accepted["request_id"]
    chunks = [line for line in job if line["event"] == "transaction"]
    assert sorted(line["chunk"] for line in chunks) == [f"{transaction_id}.c{n:04d}" for n in range(3)]
    assert sorted(line["items"] for line in chunks) == [20, 40, 40]
    assert sum(line["failed"] for line in chunks) == 1
    assert [line["failures"][0]["id"] for line in chunks if line["failed"]] == ["r99"]
    [done] = [line for line in job if line["event"] == "job done"]
    assert (done["items"], done["done"], done["failed"]) == (100, 99, 1)
    assert {(line["principal"], line["ercollectionid"]) for line in job} == {("alice", "c1")}


async def test_a_big_job_is_applied_in_about_twenty_bigger_chunks(app_factory, logs: LogLines):
    # jobs.chunk_size 5: 300 items would be 60 chunks; a big job has about 20 (erapi/jobs.py, chunk_size_of)
    api = await app_factory(jobs={**FAST_JOBS, "chunk_size": 5})
    await api.register("c1")
    await api.entities("c1", [entity(f"e{i}") for i in range(10)])
    items = [relationship(f"r{i}", f"e{i % 10}", f"e{(i + 1) % 10}") for i in range(300)]
    transaction_id = (await submit(api, items))["transactionId"]
    await wait_for_job(api, transaction_id)
    await logs.eventually(event="job done", transaction_id=transaction_id)

    job = logs.where(transaction_id=transaction_id)
    [accepted] = [line for line in job if line["event"] == "job accepted"]
    assert accepted["chunks"] == 20
    assert sorted(line["items"] for line in job if line["event"] == "transaction") == [15] * 20
    [done] = [line for line in job if line["event"] == "job done"]
    assert (done["items"], done["done"], done["failed"]) == (300, 300, 0)
    others = [line["event"] for line in job if line["event"] not in {"transaction", "job accepted"}]
    assert others == ["request", "job done"]


async def test_registrations_grants_and_revocations_leave_an_audit_trail(api: Api, logs: LogLines):
    await api.register("c1", "Building 81")
    await api.grant("c1", "bob", ["read"])
    await api.grant("c1", "bob", ["write"])
    await api.grant("c1", "bob", [])
    await api.as_("bob").call("PUT", "/apollo/collections/c1/acl", 403,
                              json_body={"principal": "bob", "access": ["read", "write"]})

    trail = [{k: v for k, v in line.items() if k not in {"timestamp", "request_id", "level", "method", "route"}}
             for line in logs.where(audit=True)]
    common = {"audit": True, "principal": "alice", "ercollectionid": "c1"}
    assert trail == [
        {**common, "event": "collection registered", "owner": "alice", "collection_name": "Building 81",
         "access": ["read", "write"]},
        {**common, "event": "grant changed", "grantee": "bob", "access": ["read"], "granted": ["read"], "revoked": []},
        {**common, "event": "grant changed", "grantee": "bob", "access": ["write"], "granted": ["write"],
         "revoked": ["read"]},
        {**common, "event": "grant changed", "grantee": "bob", "access": [], "granted": [], "revoked": ["write"]},
    ]
    [registered] = await logs.access_lines(route="/apollo/collections")
    assert registered["status"] == 201 and registered["ercollectionid"] == "c1"


async def test_a_request_the_http_parser_refuses_is_logged_as_json_lines(api: Api, logs: LogLines):
    reader, writer = await asyncio.open_connection(api.client.server.host, api.client.server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nno colon here\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()

    assert answer.startswith(b"HTTP/1.1 400") or answer.startswith(b"HTTP/1.0 400")
    [error] = logs.where(logger="aiohttp.server")  # where() parses every line: none is plain text
    assert error["level"] == "error" and error["event"].startswith("Error handling request")
    assert "BadHttpMessage" in error["exception"] and "Invalid header" in error["exception"]
    [access] = await logs.access_lines()
    assert (access["status"], access["route"]) == (400, "unmatched")
