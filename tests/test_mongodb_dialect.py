"""The MongoDB plugin's dialect: chosen by the server's version, overridable by config, and followed."""

from __future__ import annotations

import uuid

import pytest
from pymongo import monitoring

from erapi.errors import ConfigurationError
from storage_plugins.base import StorageError, create_storage
from storage_plugins.mongodb_dialect import FERRETDB1, MONGODB, choose_dialect
from tests.command_monitoring import DatabaseWindow

MONGODB_8 = {"version": "8.2.11", "versionArray": [8, 2, 11, 0], "ok": 1.0}
FERRETDB_1 = {"version": "7.0.42", "ferretdbVersion": "v1.24.2", "ok": 1.0}


@pytest.mark.parametrize(
    "build_info, expected",
    [
        (MONGODB_8, MONGODB),
        ({"version": "7.0.14", "ok": 1.0}, MONGODB),
        ({"ok": 1.0}, MONGODB),  # a server that says nothing of itself is taken for MongoDB
        (FERRETDB_1, FERRETDB1),
        ({"version": "7.0.42", "ferretdbVersion": "1.0.0"}, FERRETDB1),
        # a later FerretDB major does not inherit 1.x's workarounds
        ({"version": "7.0.77", "ferretdbVersion": "v2.1.0"}, MONGODB),
        ({"version": "7.0.77", "ferretdbVersion": "10.0.0"}, MONGODB),
        ({"version": "7.0.77", "ferretdbVersion": "unknown"}, MONGODB),
    ],
)
def test_the_dialect_is_chosen_by_the_server_version(build_info, expected):
    assert choose_dialect(build_info).dialect is expected


def test_a_later_ferretdb_is_told_in_the_reason():
    assert "not 1.x" in choose_dialect({"ferretdbVersion": "v2.1.0"}).reason


@pytest.mark.parametrize("build_info", [MONGODB_8, FERRETDB_1])
def test_config_overrides_the_version(build_info):
    assert choose_dialect(build_info, "ferretdb1").dialect is FERRETDB1
    assert choose_dialect(build_info, "mongodb").dialect is MONGODB
    assert choose_dialect(build_info, FERRETDB1).dialect is FERRETDB1  # injected by the caller


def test_an_unknown_dialect_is_refused_before_connecting():
    with pytest.raises(ConfigurationError, match="mongodb.dialect must be one of"):
        create_storage("mongodb", {"uri": "mongodb://127.0.0.1:1/", "database": "d", "dialect": "ferretdb2"})


class UpdateFilters(DatabaseWindow):
    """The filters of every update statement and the names of every command sent to one database."""

    def fresh(self) -> dict[str, list]:
        return {"commands": [], "filters": []}

    def record(self, collected: dict[str, list], event) -> None:
        collected["commands"].append(event.command_name)
        if event.command_name == "update":
            collected["filters"].extend(statement["q"] for statement in event.command["updates"])


UPDATES = UpdateFilters()
monitoring.register(UPDATES)  # applies to every client created from now on; it records only inside a window


def current(doc_id: str, version: int) -> dict:
    return {"id": doc_id, "entityType": "BRICK_0_4__AHU", "isActive": True, "sysData": {"sysEntityVersion": version}}


async def publish_twice(uri: str, dialect: str) -> tuple[str, dict[str, list]]:
    """Open the plugin with ``dialect``, publish version 1 then 2 of one entity; the dialect it took and what the
    second publish sent. A server that lacks what the dialect uses refuses it: StorageError."""
    settings = {"uri": uri, "database": f"erapi_test_{uuid.uuid4().hex[:12]}", "timeout_ms": 5000,
                "dialect": dialect}
    plugin = create_storage("mongodb", settings)
    await plugin.open()
    try:
        await plugin.put_current("entities", "c1", [current("e1", 1)])
        with UPDATES.window(settings["database"]) as sent:
            await plugin.put_current("entities", "c1", [current("e1", 2)])
        assert (await plugin.get_current("entities", "c1", ["e1"]))["e1"]["sysData"]["sysEntityVersion"] == 2
        return plugin.dialect.name, sent
    finally:
        await plugin._client.drop_database(settings["database"])
        await plugin.close()


async def server_is_ferretdb1(uri: str) -> bool:
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return choose_dialect(await client.admin.command("buildInfo")).dialect is FERRETDB1
    finally:
        await client.close()


async def test_the_configured_dialect_is_followed_on_a_live_server(mongodb_server_uri):
    name, sent = await publish_twice(mongodb_server_uri, "ferretdb1")
    assert name == "ferretdb1"
    # read the stored versions, then replace by _id alone
    assert sent["commands"][0] == "find" and sent["filters"] and all(set(q) == {"_id"} for q in sent["filters"])

    if await server_is_ferretdb1(mongodb_server_uri):
        # the mongodb dialect's pipeline update, which FerretDB 1.x refuses: the override is followed all the same
        with pytest.raises(StorageError, match="wrong type 'array'"):
            await publish_twice(mongodb_server_uri, "mongodb")
        return
    name, sent = await publish_twice(mongodb_server_uri, "mongodb")
    assert name == "mongodb"
    # one upsert per document on the unique key, no read first
    assert sent["commands"] == ["update"]
    assert sent["filters"] == [{"ercollectionid": "c1", "id": "e1"}]


async def test_auto_takes_the_dialect_of_the_live_server_version(mongodb_server_uri):
    name, _ = await publish_twice(mongodb_server_uri, "auto")
    assert name == ("ferretdb1" if await server_is_ferretdb1(mongodb_server_uri) else "mongodb")
