"""Client input that once reached a 500: each case answers a 4xx in the envelope and writes nothing.

Every test runs on each storage plugin; "nothing written" is read back through the storage interface by
``refused`` (tests/test_hostile_input.py) and, where it matters, through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import resource

import aiohttp
import orjson
import pytest
import structlog.testing
from aiohttp import web

from erapi.app import create_app
from erapi.keys import storage_key
from storage_plugins.base import StorageError
from tests.api_fixtures import entity, make_config, token
from tests.test_hostile_input import COLLECTION, refused, rel, site  # noqa: F401 (site is a fixture)

BATCH_WRITES = [("relationships", "false"), ("relationships", "true"), ("entities", "false"), ("entities", "true")]


RAW = "<raw>"


def nested(depth: int) -> bytes:
    """An array nested ``depth`` levels deep, as JSON text (deeper than orjson.dumps would write)."""
    return b"[" * depth + b"]" * depth


def with_raw(body, raw: bytes) -> bytes:
    """``body`` as JSON with the JSON text ``raw`` in place of each RAW string."""
    return orjson.dumps(body).replace(orjson.dumps(RAW), raw)


def item_of(kind: str, item_id: str = "r1", **extra) -> dict:
    return rel(item_id, **extra) if kind == "relationships" else entity(item_id, **extra)


async def assert_not_stored(api, kind: str, *ids: str) -> None:
    for item_id in ids:
        await api.call("GET", f"/apollo/er/{kind}/{item_id}", 404, collection=COLLECTION)


# ---- nesting depth ------------------------------------------------------------------------------------------------

DEPTH_MESSAGE = "The request body is nested deeper than 32 levels"


@pytest.mark.parametrize("kind, run_async", BATCH_WRITES)
@pytest.mark.parametrize("depth", [33, 256, 1000])
async def test_batch_writes_nested_too_deep_in_a_property_are_400(site, kind, run_async, depth):
    body = await refused(site, "POST", f"/apollo/er/{kind}", 400, DEPTH_MESSAGE,
                         data=with_raw([item_of(kind, "r1"), item_of(kind, "e1", deep=RAW)], nested(depth)),
                         headers={"async": run_async})
    [error] = body["errors"]
    assert error["path"] == "/1/deep" + "/0" * 30
    await assert_not_stored(site, kind, "r1", "e1")


@pytest.mark.parametrize("kind, run_async", BATCH_WRITES)
@pytest.mark.parametrize("depth", [256, 1022])
async def test_batch_writes_of_a_bare_nested_array_are_400(site, kind, run_async, depth):
    body = await refused(site, "POST", f"/apollo/er/{kind}", 400, DEPTH_MESSAGE, data=nested(depth),
                         headers={"async": run_async})
    assert body["errors"][0]["path"] == "/0" * 32


@pytest.mark.parametrize("depth", [33, 255, 1000])
async def test_collection_bodies_nested_too_deep_are_400(site, depth):
    await refused(site, "POST", "/apollo/collections", 400, DEPTH_MESSAGE,
                  data=with_raw({"collectionId": "deep", "collectionName": RAW}, nested(depth)), collection=None)
    await site.call("GET", "/apollo/collections/deep", 404)


@pytest.mark.parametrize("depth", [33, 255, 1000])
async def test_grant_bodies_nested_too_deep_are_400(site, depth):
    await refused(site, "PUT", f"/apollo/collections/{COLLECTION}/acl", 400, DEPTH_MESSAGE,
                  data=with_raw({"principal": "bob", "access": RAW}, nested(depth)), collection=None)
    grants = await site.call("GET", f"/apollo/collections/{COLLECTION}/acl", 200, schema="grants")
    assert [grant["principal"] for grant in grants["data"]["grants"]] == ["alice"]


async def test_nesting_within_the_limit_is_judged_by_the_schema(site):
    body = await refused(site, "POST", "/apollo/er/relationships", 400, "The request body does not match its schema",
                         data=with_raw([rel("r1", deep=RAW)], nested(30)))
    assert [error["path"] for error in body["errors"]] == ["/0/deep/0"]


# ---- corrupt compressed bodies -------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding, data", [
    ("gzip", b"\x1f\x8b\x08\x00garbage-not-a-deflate-stream"),
    ("deflate", b"this is not zlib"),
])
async def test_corrupt_compressed_bodies_are_400(site, encoding, data, caplog):
    await refused(site, "POST", "/apollo/er/relationships", 400,
                  f"The request body is not valid {encoding} data", data=data,
                  headers={"Content-Type": "application/json", "Content-Encoding": encoding})
    await assert_not_stored(site, "relationships", "r1")
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


async def test_truncated_gzip_bodies_are_400(site):
    truncated = gzip.compress(orjson.dumps([rel("r1")]))[:-12]
    await refused(site, "POST", "/apollo/er/relationships", 400, data=truncated,
                  headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    await assert_not_stored(site, "relationships", "r1")


# ---- numbers in query parameters and headers -------------------------------------------------------------------------

LIMIT_MESSAGE = "limit must be a whole number from 1 to 1000"


@pytest.mark.parametrize("limit", ["²", "٢", "１０", "1\n", " 5", "+5", "1_0", "0x10", "1e2", "", "0", "1001"])
async def test_tracker_limit_takes_ascii_digits_only(site, limit):
    await site.relationships(COLLECTION, [rel("r1")])
    await refused(site, "GET", "/apollo/status/logs", 400, LIMIT_MESSAGE,
                  params={"relationshipid": "r1", "limit": limit})


async def test_tracker_limit_in_ascii_digits_is_read(site):
    await site.relationships(COLLECTION, [rel("r1"), rel("r2")])
    answer = await site.status_logs(COLLECTION, {"starttime": "2000-01-01T00:00:00Z", "limit": "0001"})
    assert len(answer["data"]) == 1


@pytest.mark.parametrize("size", ["²", "٢", "1 0", "1_0"])
async def test_page_size_takes_ascii_digits_only(site, size):
    await refused(site, "GET", "/apollo/er/relationships", 400,
                  "The PageSize header must be a whole number from 1 to 1000", headers={"PageSize": size})


# ---- timestamps at the edge of the calendar --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["startTime", "endTime"])
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_timestamps_outside_the_calendar_in_utc_are_400(site, name, value):
    await refused(site, "GET", "/apollo/status/logs", 400,
                  f"{name} must be an ISO 8601 timestamp between 0001-01-01 and 9999-12-31 in UTC",
                  params={name: value})


@pytest.mark.parametrize("value", ["٢٠٢٦-01-01T00:00:00", "2026-01-01T00:00:00\n", "yesterday"])
async def test_timestamps_that_are_not_iso_8601_are_400(site, value):
    await refused(site, "GET", "/apollo/status/logs", 400,
                  "startTime must be an ISO 8601 timestamp between 0001-01-01 and 9999-12-31 in UTC",
                  params={"startTime": value})


async def test_timestamps_at_the_edge_of_the_calendar_are_read(site):
    await site.relationships(COLLECTION, [rel("r1")])
    answer = await site.status_logs(COLLECTION, {"startTime": "0001-01-01T00:00:00-14:00",
                                                 "endTime": "9999-12-31T23:59:59+14:00"})
    assert answer["paging"]["totalCount"] >= 1


# ---- numbers no plugin can store exactly ---------------------------------------------------------------------------

INT64_MAX = 2 ** 63 - 1


@pytest.mark.parametrize("kind, run_async", BATCH_WRITES)
@pytest.mark.parametrize("number", [INT64_MAX + 1, 2 ** 64 - 1, 2 ** 64, 10 ** 30, -(2 ** 63) - 1])
async def test_integers_outside_int64_are_400_naming_the_field(site, kind, run_async, number):
    items = [item_of(kind, f"r{i}") for i in range(99)] + [item_of(kind, "e1", reading=RAW)]
    body = await refused(site, "POST", f"/apollo/er/{kind}", 400, "The request body does not match its schema",
                         data=with_raw(items, str(number).encode()), headers={"async": run_async}, ids=("r0", "r98", "e1"))
    bound = "greater than the maximum of 9223372036854775807" if number > 0 else \
        "less than the minimum of -9223372036854775808"
    [error] = body["errors"]
    assert error["path"] == "/99/reading" and error["message"].endswith(bound)
    await assert_not_stored(site, kind, "r0", "r98", "e1")


@pytest.mark.parametrize("where", ["property", "list", "object"])
async def test_huge_numbers_are_400_wherever_they_sit(site, where):
    value = {"property": RAW, "list": [1, RAW], "object": {"a": RAW}}[where]
    path = {"property": "/0/reading", "list": "/0/reading/1", "object": "/0/reading/a"}[where]
    body = await refused(site, "POST", "/apollo/er/entities", 400,
                         data=with_raw([entity("e1", reading=value)], str(2 ** 64).encode()))
    assert [error["path"] for error in body["errors"]] == [path]


@pytest.mark.parametrize("literal", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
async def test_non_finite_numbers_are_400(site, literal):
    await refused(site, "POST", "/apollo/er/entities", 400, data=with_raw([entity("e1", reading=RAW)], literal))
    await assert_not_stored(site, "entities", "e1")


async def test_int64_bounds_are_stored_exactly(site):
    await site.entities(COLLECTION, [entity("e1", high=INT64_MAX, low=-(2 ** 63), ratio=-1.5e-300)])
    [stored] = (await site.call("GET", "/apollo/er/entities/e1", 200, collection=COLLECTION))["data"]
    assert (stored["high"], stored["low"], stored["ratio"]) == (INT64_MAX, -(2 ** 63), -1.5e-300)


# ---- long ids in messages ------------------------------------------------------------------------------------------

LONG = "x" * 10_000


@pytest.fixture
async def roomy(app_factory):
    """alice owns 'site', under the default header limit (the request line of a 10,000-character id fits)."""
    api = await app_factory()
    await api.register(COLLECTION)
    return api

CUT = "x" * 64 + "... (10000 characters)"


@pytest.mark.parametrize("method, path, message", [
    ("GET", f"/apollo/er/relationships/{LONG}", f"Relationship {CUT} not found in ERCollection site"),
    ("GET", f"/apollo/er/entities/{LONG}", f"Entity {CUT} not found in ERCollection site"),
    ("GET", f"/apollo/er/entities/{LONG}/versions", f"Entity {CUT} not found in ERCollection site"),
    ("DELETE", f"/apollo/er/entities/{LONG}", f"Entity {CUT} not found in ERCollection site"),
    ("GET", f"/apollo/collections/{LONG}", f"ERCollection {CUT} not found"),
    ("GET", f"/apollo/schema/entitytypes/{LONG}", f"Entity type {CUT} not found"),
])
async def test_long_ids_are_cut_in_messages(roomy, method, path, message):
    body = await refused(roomy, method, path, 404, message)
    assert LONG not in orjson.dumps(body["status"]).decode()


async def test_ids_up_to_64_characters_are_shown_whole(site):
    await refused(site, "GET", f"/apollo/er/relationships/{'y' * 64}", 404,
                  f"Relationship {'y' * 64} not found in ERCollection site")


# ---- slow clients and clients that hang up ---------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def served(storage_name, storage_settings, **sections):
    """The app behind aiohttp's own runner, as `erapi serve` runs it (the test server would cancel handlers
    on a hang-up, which production does not); yields the address and a session speaking as alice."""
    runner = web.AppRunner(create_app(make_config(storage_name, storage_settings, **sections)), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    headers = {"Authorization": f"Bearer {token('alice')}"}
    try:
        async with aiohttp.ClientSession(f"http://{host}:{port}", headers=headers) as session:
            async with session.post("/apollo/collections", json={"collectionId": COLLECTION}) as response:
                assert response.status == 201
            yield host, port, session
    finally:
        await runner.cleanup()


def request_head(content_length: int) -> bytes:
    return (f"POST /apollo/er/relationships HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token('alice')}\r\n"
            f"ercollectionid: {COLLECTION}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n\r\n").encode()


async def test_a_client_hanging_up_mid_body_is_logged_as_such(storage_name, storage_settings):
    async with served(storage_name, storage_settings) as (host, port, session):
        with structlog.testing.capture_logs() as logs:
            _reader, writer = await asyncio.open_connection(host, port)
            writer.write(request_head(5000) + orjson.dumps([rel("r1")])[:-1])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            for _ in range(200):  # the server notices the hang-up on its own schedule: wait for its log line
                if any(entry["event"] == "client disconnected" for entry in logs):
                    break
                await asyncio.sleep(0.05)
        assert ("client disconnected", "warning") in [(entry["event"], entry["log_level"]) for entry in logs]
        assert not [entry for entry in logs if entry["log_level"] in ("error", "critical")]
        async with session.get("/apollo/er/relationships/r1", headers={"ercollectionid": COLLECTION}) as response:
            assert response.status == 404


RESET = b"(reset)"


async def trickle(host: str, port: int, first: bytes, drip: bytes, seconds: float) -> bytes:
    """Send ``first``, then ``drip`` a byte every half second for up to ``seconds``; what the server answered
    once it cut the connection (RESET if it reset it), or None if it never did."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(first)
        for index in range(int(seconds * 2)):
            await writer.drain()
            try:
                first_block = await asyncio.wait_for(reader.read(65536), 0.5)  # one read: safe to cancel
            except asyncio.TimeoutError:
                writer.write(drip[index % len(drip):][:1])
                continue
            return first_block + await reader.read()  # b"" or the answer, then end of stream
        return None
    except ConnectionError:
        return RESET
    finally:
        writer.close()


def raise_open_file_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        soft = min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


@pytest.mark.slow
async def test_slow_clients_are_cut_after_the_timeouts_while_others_are_served(storage_name, storage_settings):
    """2,000 connections (as many as the open-file limit allows, each end counting) trickle their heads or
    bodies for up to a minute; with 2-second timeouts every one is cut, the body ones with a 408."""
    connections = min(2000, (raise_open_file_limit(4500) - 300) // 2)
    timeouts = {"header_timeout_seconds": 2.0, "body_timeout_seconds": 2.0}
    async with served(storage_name, storage_settings, server=timeouts) as (host, port, session):
        body = orjson.dumps([rel("r1")])
        slow = []
        for start in range(0, connections, 100):  # in waves: the listen backlog is not 2,000 deep
            for index in range(start, min(start + 100, connections)):
                if index % 2:
                    slow.append(asyncio.ensure_future(trickle(host, port, b"POST /apollo/er/relat", b"ionships", 60)))
                else:
                    slow.append(asyncio.ensure_future(trickle(host, port, request_head(len(body)), body, 60)))
            await asyncio.sleep(0.05)
        # meanwhile, an ordinary client is served; on a new connection: the 2-second header timeout is also the
        # keep-alive timeout, and opening the waves on a loaded machine can outlast it, so the session's pooled
        # connection may have been closed as idle meanwhile
        async with aiohttp.ClientSession(f"http://{host}:{port}", headers=session.headers) as ordinary:
            async with ordinary.post("/apollo/er/entities", json=[entity("e1")],
                                     headers={"ercollectionid": COLLECTION}) as response:
                assert response.status == 207
        assert not all(connection.done() for connection in slow), "served only once the slow ones were gone"
        answers = await asyncio.gather(*slow)
    assert None not in answers, "a slow connection was held for the whole minute"
    heads, bodies = answers[1::2], answers[0::2]
    assert set(heads) <= {b"", RESET}  # cut without an answer: no request was ever complete
    # a body connection is answered 408, or reset by the kernel when the server closes with trickled bytes
    # still unread (no lingering for a slow client): cut either way
    assert {answer[:17] for answer in bodies} <= {b"HTTP/1.1 408 Requ", RESET}
    answered = [answer for answer in bodies if answer != RESET]
    assert answered and all(b"Connection: close" in answer for answer in answered)
    assert b'"The request body did not arrive within 2 seconds"' in answered[0]
    assert len(answers) == connections


# ---- 503 says when to come back ------------------------------------------------------------------------------------

async def test_every_503_carries_retry_after(site):
    storage = site.client.app[storage_key]

    async def unavailable(*args, **kwargs):
        raise StorageError("down")

    storage.get_current = unavailable
    storage.ping = unavailable
    body = await site.call("GET", "/apollo/er/relationships/r1", 503, collection=COLLECTION)
    assert body["_headers"]["Retry-After"] == "5"
    body = await site.call("POST", "/apollo/er/relationships", 503, collection=COLLECTION, json_body=[rel("r1")])
    assert body["_headers"]["Retry-After"] == "5"
    response = await site.client.get("/readyz")
    assert response.status == 503 and response.headers["Retry-After"] == "5"


async def test_retry_after_is_configured(app_factory):
    api = await app_factory(server={"retry_after_seconds": 30})
    storage = api.client.app[storage_key]

    async def unavailable(*args, **kwargs):
        raise StorageError("down")

    storage.ping = unavailable
    response = await api.client.get("/readyz")
    assert response.status == 503 and response.headers["Retry-After"] == "30"


# ---- what a stranger learns about collection ids -----------------------------------------------------------------

async def test_a_stranger_learns_whether_a_collection_id_exists_and_nothing_more(site):
    """As documented in docs/SECURITY.md: the collection endpoints answer 404 for an id nobody registered
    and 403 for one that exists (CONTRACT.md), registration answers 409; the data endpoints answer the same
    403 either way. Neither answer carries the collection's name, owner or grants."""
    stranger = site.as_("mallory")
    for path in ("/apollo/collections/{}", "/apollo/collections/{}/acl"):
        missing = await stranger.call("GET", path.format("nobody-has-this"), 404)
        existing = await stranger.call("GET", path.format(COLLECTION), 403)
        assert "data" not in missing and "data" not in existing
    await stranger.call("PUT", f"/apollo/collections/{COLLECTION}/acl", 403,
                        json_body={"principal": "mallory", "access": ["read"]})
    await stranger.call("POST", "/apollo/collections", 409, json_body={"collectionId": COLLECTION})
    messages = set()
    for collection in (COLLECTION, "nobody-has-this"):
        body = await stranger.call("GET", "/apollo/er/relationships/r1", 403, collection=collection)
        messages.add(body["status"]["message"].replace(collection, "X"))
    assert messages == {"ERCollection X is not registered or the caller has no read grant on it"}
