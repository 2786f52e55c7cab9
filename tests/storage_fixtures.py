"""Storage fixtures: every test that takes ``storage`` (or ``storage_name``) runs once per plugin.

A new plugin joins the suite in three steps: register it under the ``erapi.storage_plugins`` entry-point
group (setup.py); add its name to ``PLUGINS`` below, with a marker if it needs a server; and teach
``storage_settings`` the keyword arguments it takes (a fresh, isolated namespace per test, removed at
teardown). ``tests/test_storage_contract.py`` and every API test then run against it unchanged.

MongoDB tests need ``ERAPI_TEST_MONGODB_URI`` (any MongoDB wire-protocol server; ``.ci/run`` starts FerretDB)
and are skipped with a reason without it. Each test gets a database of its own, dropped at teardown. With
``ERAPI_REQUIRE_MONGODB`` set (``.ci/run`` sets it), a skipped test marked ``mongodb`` fails the run, so CI
cannot pass without having run them.

Tests that must stop the server take ``ferretdb``: a FerretDB process of their own (``tests/ferretdb.py``).
"""

from __future__ import annotations

import os
import uuid

import pytest

from storage_plugins.base import create_storage
from tests import ferretdb as ferretdb_helper

PLUGINS = ["memory", pytest.param("mongodb", marks=pytest.mark.mongodb)]
MONGODB_SKIP_REASON = (
    "MongoDB tests need ERAPI_TEST_MONGODB_URI (a MongoDB wire-protocol server); .ci/run starts FerretDB"
)
REQUIRE_MONGODB = "ERAPI_REQUIRE_MONGODB"
_skipped_mongodb_key = pytest.StashKey[list]()


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
    """Keyword arguments of ``create_storage(storage_name, ...)``, isolated from every other test."""
    if storage_name != "mongodb":
        yield {}
        return
    uri = request.getfixturevalue("mongodb_uri")
    database = f"erapi_test_{uuid.uuid4().hex[:12]}"
    yield {"uri": uri, "database": database, "write_concern": "majority", "journal": True, "timeout_ms": 5000}
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


@pytest.fixture
async def storage(storage_name, storage_settings):
    """The plugin under test, opened; closed at teardown."""
    plugin = create_storage(storage_name, storage_settings)
    await plugin.open()
    try:
        yield plugin
    finally:
        await plugin.close()


@pytest.fixture
def ferretdb(tmp_path):
    """A started FerretDB of this test's own (``tests.ferretdb.FerretDB``), stopped at teardown."""
    reason = ferretdb_helper.binary_missing_reason()
    if reason:
        pytest.skip(reason)
    server = ferretdb_helper.FerretDB(tmp_path / "ferretdb")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_configure(config) -> None:
    config.stash[_skipped_mongodb_key] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("mongodb"):
        item.config.stash[_skipped_mongodb_key].append(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    skipped = config.stash.get(_skipped_mongodb_key, [])
    if skipped and os.environ.get(REQUIRE_MONGODB):
        terminalreporter.section("MongoDB tests skipped", red=True)
        terminalreporter.line(f"{REQUIRE_MONGODB} is set, but {len(skipped)} tests marked mongodb were skipped:")
        for nodeid in skipped:
            terminalreporter.line(f"  {nodeid}")


def pytest_sessionfinish(session, exitstatus) -> None:
    if session.config.stash.get(_skipped_mongodb_key, []) and os.environ.get(REQUIRE_MONGODB):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
