"""What an operator sees: the JSON log lines (access, jobs, audit, aiohttp's own) and, filtered like with jq."""

from __future__ import annotations

import asyncio
import io
import uuid

import orjson
import pytest
import structlog

from erapi.logs import configure_logging
from tests.api_fixtures import Api, entity

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


@pytest.fixture
def logs():
    saved = structlog.get_config()
    buffer = io.BytesIO()
    configure_logging("INFO", stream=buffer)
    structlog.configure(cache_logger_on_first_use=False)  # no logger may keep writing into the buffer afterwards
    yield LogLines(buffer)
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
