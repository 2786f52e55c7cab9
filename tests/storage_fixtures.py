"""Storage fixtures: every test that takes ``storage`` (or ``storage_name``) runs once per plugin.

A new plugin joins the suite by registering under the ``erapi.storage_plugins`` entry-point group and
adding its name to ``PLUGINS`` with the settings it needs below; the contract suite then runs against it.
"""

from __future__ import annotations

import os
import uuid

import pytest

from storage_plugins.base import create_storage

PLUGINS = ["memory", pytest.param("mongodb", marks=pytest.mark.mongodb)]
MONGODB_SKIP_REASON = (
    "MongoDB tests need ERAPI_TEST_MONGODB_URI (a MongoDB wire-protocol server); .ci/run starts FerretDB"
)


@pytest.fixture(scope="session")
def mongodb_uri() -> str:
    uri = os.environ.get("ERAPI_TEST_MONGODB_URI")
    if not uri:
        pytest.skip(MONGODB_SKIP_REASON)
    return uri


@pytest.fixture(params=PLUGINS)
def storage_name(request) -> str:
    return request.param


@pytest.fixture
async def storage_settings(storage_name, request) -> dict:
    if storage_name != "mongodb":
        yield {}
        return
    uri = request.getfixturevalue("mongodb_uri")
    database = f"erapi_test_{uuid.uuid4().hex[:12]}"
    yield {"uri": uri, "database": database, "write_concern": "1", "journal": True, "timeout_ms": 5000}
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


@pytest.fixture
async def storage(storage_name, storage_settings):
    plugin = create_storage(storage_name, storage_settings)
    await plugin.open()
    try:
        yield plugin
    finally:
        await plugin.close()
