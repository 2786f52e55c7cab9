"""The MongoDB plugin's own checks (server down and back, start-up, credentials in logs), which no other plugin
can share; the storage contract every plugin passes is tests/storage_contract/."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid

import pytest

from erapi.errors import ConfigurationError
from storage_plugins.base import DuplicateError, StorageError, create_storage
from tests.storage_contract.helpers import relationship, status_record, store

# ---- the MongoDB plugin's own checks -------------------------------------------------------------------------


@pytest.mark.mongodb
async def test_mongodb_instances_on_one_database_share_data_and_reopen_idempotently(mongodb_uri):
    settings = {"uri": mongodb_uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "write_concern": "1",
                "journal": False, "timeout_ms": 5000}
    first, second = create_storage("mongodb", settings), create_storage("mongodb", settings)
    try:
        await first.open()
        await store(first, "relationships", "c1", relationship("a", 1))
        await first.insert_logs([status_record("log-1")])
        await second.open()  # indexes exist already: open() leaves them and the data alone
        assert await second.get_current("relationships", "c1", ["a"]) == {"a": relationship("a", 1)}
        claim = await second.claim_versions("relationships", "c1", [relationship("a", 1)])
        assert claim.conflicted == ["a"]
        with pytest.raises(DuplicateError):
            await second.insert_logs([status_record("log-1")])
    finally:
        await first.close()
        await second.close()
        from pymongo import AsyncMongoClient

        client = AsyncMongoClient(mongodb_uri, serverSelectionTimeoutMS=5000)
        await client.drop_database(settings["database"])
        await client.close()


@pytest.mark.mongodb
async def test_an_insert_sent_again_after_it_landed_is_not_refused_but_a_real_clash_is(mongodb_uri):
    # PyMongo re-sends a retryable insert whose answer was lost; a server without retryable-write bookkeeping
    # (FerretDB, SecantusDB) then refuses the documents the first attempt stored. Sending the very same
    # documents (same ObjectIds) twice is that re-send.
    from storage_plugins.mongodb import _stored

    settings = {"uri": mongodb_uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "write_concern": "1",
                "journal": False, "timeout_ms": 5000}
    plugin = create_storage("mongodb", settings)
    try:
        await plugin.open()
        batch = [_stored(relationship(name, 1), "c1") for name in ("a", "b")]
        assert await plugin._insert_unordered("relationships_history", batch, "first send") == set()
        assert await plugin._insert_unordered("relationships_history", batch, "re-send") == set()
        others = [_stored(relationship(name, 1), "c1") for name in ("b", "c")]  # another writer's, new ObjectIds
        assert await plugin._insert_unordered("relationships_history", others, "other writer") == {0}
        versions = await plugin.get_versions("relationships", "c1", "b")
        assert len(versions) == 1
    finally:
        await plugin.close()
        from pymongo import AsyncMongoClient

        client = AsyncMongoClient(mongodb_uri, serverSelectionTimeoutMS=5000)
        await client.drop_database(settings["database"])
        await client.close()


async def close_and_collect_leaked_sockets(plugin) -> None:
    """Close, then collect here the socket PyMongo 4.20 leaks when close() cancels a pending connection attempt
    (PYTHON-5867), so that its ResourceWarning falls in the test that caused it, which ignores it."""
    await plugin.close()
    await asyncio.sleep(0.1)
    gc.collect()


IGNORE_PYMONGO_SOCKET_LEAK = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


@IGNORE_PYMONGO_SOCKET_LEAK
async def test_mongodb_open_fails_fast_when_the_server_is_down_and_close_is_safe():
    pytest.importorskip("pymongo")
    from tests.ferretdb import free_port

    plugin = create_storage(
        "mongodb",
        {"uri": f"mongodb://127.0.0.1:{free_port()}/", "database": "erapi_down", "timeout_ms": 500},
    )
    started = time.monotonic()
    with pytest.raises(StorageError):
        await plugin.open()
    assert time.monotonic() - started < 5
    await close_and_collect_leaked_sockets(plugin)
    await plugin.close()


@IGNORE_PYMONGO_SOCKET_LEAK
async def test_mongodb_uri_password_is_never_logged():
    pytest.importorskip("pymongo")
    from structlog.testing import capture_logs

    from tests.ferretdb import free_port

    uri = f"mongodb://erapi:s3cret-p4ss@127.0.0.1:{free_port()}/?authSource=admin&tlsCertificateKeyFilePassword=k3y"
    plugin = create_storage("mongodb", {"uri": uri, "database": "erapi_down", "timeout_ms": 300})
    with capture_logs() as logs, pytest.raises(StorageError) as failure:
        await plugin.open()
    await close_and_collect_leaked_sockets(plugin)
    logged = repr(logs)
    assert "erapi:***@127.0.0.1" in logged
    assert "s3cret" not in logged and "k3y" not in logged
    assert "s3cret" not in str(failure.value)


def test_mongodb_write_concern_must_be_majority_or_a_positive_number():
    pytest.importorskip("pymongo")
    for bad in ("most", "0", "-1", ""):
        with pytest.raises(ConfigurationError):
            create_storage("mongodb", {"uri": "mongodb://127.0.0.1:1/", "database": "x", "write_concern": bad})


@pytest.mark.mongodb
@IGNORE_PYMONGO_SOCKET_LEAK
async def test_mongodb_ping_fails_while_the_server_is_down_and_recovers_without_restart(ferretdb):
    settings = {"uri": ferretdb.uri, "database": "erapi_down_and_back", "timeout_ms": 1000}
    plugin = create_storage("mongodb", settings)
    await plugin.open()
    try:
        await store(plugin, "relationships", "c1", relationship("a", 1))
        await plugin.ping()

        ferretdb.stop()
        started = time.monotonic()
        with pytest.raises(StorageError):
            await plugin.ping()
        with pytest.raises(StorageError):
            await plugin.get_current("relationships", "c1", ["a"])
        assert time.monotonic() - started < 5, "a down server must fail fast"

        ferretdb.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                await plugin.ping()
                break
            except StorageError:
                assert time.monotonic() < deadline, "the client did not reconnect by itself"
                await asyncio.sleep(0.2)
        assert await plugin.get_current("relationships", "c1", ["a"]) == {"a": relationship("a", 1)}
    finally:
        await close_and_collect_leaked_sockets(plugin)  # it was down for a while: the same leak may be pending
