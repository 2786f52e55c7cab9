"""Storage fixtures: every test that takes ``storage`` (or ``storage_name``) runs once per storage backend.

A backend is a plugin and, for a plugin that needs one, a server. ``memory`` needs none; ``mongodb`` runs on two
MongoDB wire-protocol servers, so that both of the plugin's dialects (``storage_plugins/mongodb_dialect.py``)
are exercised by every test:

- ``mongodb``: the server at ``ERAPI_TEST_MONGODB_URI``; ``.ci/run`` starts FerretDB 1.24 (the ``ferretdb1``
  dialect: the plugin's workarounds);
- ``secantusdb``: the server at ``ERAPI_TEST_SECANTUSDB_URI``; ``.ci/run`` starts SecantusDB (WiredTiger,
  reports MongoDB 8.2, a single-node replica set: the ``mongodb`` dialect, the path production MongoDB takes).

A new plugin joins the suite in three steps: register it under the ``erapi.storage_plugins`` entry-point
group (setup.py); add it to ``BACKENDS`` below, with a marker if it needs a server; and teach
``storage_settings`` the keyword arguments it takes (a fresh, isolated namespace per test, removed at
teardown). ``tests/storage_contract/`` and every API test then run against it unchanged.

A MongoDB backend whose URI variable is unset is skipped with a reason. Each test gets a database of its own,
dropped at teardown. With ``ERAPI_REQUIRE_MONGODB`` set (``.ci/run`` sets it), a skipped test marked ``mongodb``
fails the run, so CI cannot pass without having run them on both servers.

Tests that must stop the server take ``ferretdb``: a FerretDB process of their own (``tests/ferretdb.py``).
Tests that take ``mongodb_uri`` alone run on ``ERAPI_TEST_MONGODB_URI``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

from storage_plugins.base import create_storage
from tests import ferretdb as ferretdb_helper


@dataclass(frozen=True)
class Backend:
    plugin: str
    uri_variable: str | None = None  # the environment variable naming its server's URI
    server: str = ""  # what .ci/run starts there, for the skip reason


MONGODB_URI, SECANTUSDB_URI = "ERAPI_TEST_MONGODB_URI", "ERAPI_TEST_SECANTUSDB_URI"
BACKENDS = [
    pytest.param(Backend("memory"), id="memory"),
    pytest.param(Backend("mongodb", MONGODB_URI, "FerretDB"), id="mongodb", marks=pytest.mark.mongodb),
    pytest.param(Backend("mongodb", SECANTUSDB_URI, "SecantusDB"), id="secantusdb",
                 marks=[pytest.mark.mongodb, pytest.mark.secantusdb]),
]
REQUIRE_MONGODB = "ERAPI_REQUIRE_MONGODB"
_skipped_mongodb_key = pytest.StashKey[list]()


def server_uri(backend: Backend) -> str:
    """The URI of the backend's server; skips the test with a reason when it is not set."""
    uri = os.environ.get(backend.uri_variable or "")
    if not uri:
        pytest.skip(f"MongoDB tests on {backend.server} need {backend.uri_variable} (a MongoDB wire-protocol "
                    f"server); .ci/run starts {backend.server} there")
    return uri


@pytest.fixture(scope="session")
def mongodb_uri() -> str:
    return server_uri(Backend("mongodb", MONGODB_URI, "FerretDB"))


@pytest.fixture(params=BACKENDS)
def storage_backend(request) -> Backend:
    return request.param


# for a MongoDB-only test that takes storage_settings: @pytest.mark.parametrize("storage_backend", MONGODB_BACKENDS,
# indirect=True)
MONGODB_BACKENDS = [backend for backend in BACKENDS if backend.values[0].uri_variable]


@pytest.fixture(params=MONGODB_BACKENDS)
def mongodb_server_uri(request) -> str:
    """The URI of each MongoDB server in turn (FerretDB, SecantusDB), for the MongoDB plugin's own tests."""
    return server_uri(request.param)


@pytest.fixture
def storage_name(storage_backend) -> str:
    return storage_backend.plugin

@pytest.fixture
async def storage_settings(storage_backend) -> dict:
    """Keyword arguments of ``create_storage(storage_name, ...)``, isolated from every other test."""
    if storage_backend.plugin != "mongodb":
        yield {}
        return
    uri = server_uri(storage_backend)
    database = f"erapi_test_{uuid.uuid4().hex[:12]}"
    # operations get 120 s, not the default 30: FerretDB scans its collections for every query (docs/OPERATIONS.md),
    # and on a loaded 2-core CI machine a read of a 10,000-document test collection can take longer than 30 s
    yield {"uri": uri, "database": database, "write_concern": "majority", "journal": True, "timeout_ms": 5000,
           "operation_timeout_ms": 120000}
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
