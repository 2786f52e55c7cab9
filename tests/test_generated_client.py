"""A Python client generated from the served OpenAPI document has every operation and runs the README's session.

openapi-python-client reads ``/apollo/openapi.json`` from a live service at test time (nothing generated is
committed), with ``--fail-on-warning``: an operation or a model it cannot generate fails the test. The
client then registers the README's two collections, writes an air handler into each and the relationship
across them, and follows the trackers of a synchronous and of an asynchronous write, on every plugin.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from erapi.app import create_app
from erapi.openapi import EXAMPLE_ENTITY, EXAMPLE_RELATIONSHIP
from tests.api_fixtures import make_config, token
from tests.live_server import LiveServer

PACKAGE = "erapi_generated_client"
SOURCE, DESTINATION = EXAMPLE_RELATIONSHIP["sourceERCollectionId"], EXAMPLE_RELATIONSHIP["destinationERCollectionId"]
DESTINATION_ENTITY = {**EXAMPLE_ENTITY, "id": EXAMPLE_RELATIONSHIP["destinationEntityId"], "entityName": "AHU-2"}

pytestmark = pytest.mark.slow  # generating the client takes a few seconds


class GeneratedClient:
    """The generated package, imported from a scratch directory, and the document it was made from."""

    def __init__(self, directory: Path, document: dict) -> None:
        self.directory = directory
        self.document = document
        sys.path.insert(0, str(directory))
        self.package = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")

    def operation_modules(self) -> dict[str, Path]:
        """Generated operation modules by file stem (one per operation: ``api/<tag>/<operation_id>.py``)."""
        return {path.stem: path for path in (self.directory / PACKAGE / "api").glob("*/*.py")
                if path.stem != "__init__"}

    def operation(self, operation_id: str) -> ModuleType:
        path = self.operation_modules()[snake_case(operation_id)]
        return importlib.import_module(f"{PACKAGE}.api.{path.parent.name}.{path.stem}")

    def close(self) -> None:
        sys.path.remove(str(self.directory))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def snake_case(operation_id: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", operation_id).lower()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> GeneratedClient:
    directory = tmp_path_factory.mktemp("generated")
    with LiveServer(create_app(make_config())) as server:
        url = f"{server.url}/apollo/openapi.json"
        document = requests.get(url, timeout=30).json()
        run = subprocess.run(
            [sys.executable, "-m", "openapi_python_client", "generate", "--url", url, "--meta", "none",
             "--output-path", str(directory / PACKAGE), "--fail-on-warning"],
            cwd=directory, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"openapi-python-client failed:\n{run.stdout}\n{run.stderr}"
    client = GeneratedClient(directory, document)
    yield client
    client.close()


@pytest.fixture
def live_service(storage_name, storage_settings):
    with LiveServer(create_app(make_config(storage_name, storage_settings))) as server:
        yield server


def test_every_operation_of_the_document_is_generated(generated):
    operation_ids = [operation["operationId"] for item in generated.document["paths"].values()
                     for operation in item.values()]
    assert len(operation_ids) == len(set(operation_ids)) >= 29
    assert sorted(generated.operation_modules()) == sorted(snake_case(name) for name in operation_ids)
    for name in operation_ids:
        module = generated.operation(name)
        assert callable(module.sync_detailed) and callable(module.asyncio_detailed), name


def test_the_readme_session_runs_through_the_generated_client(generated, live_service):
    models = generated.models
    client = generated.package.AuthenticatedClient(base_url=live_service.url, token=token("alice"),
                                                   raise_on_unexpected_status=True)

    def call(operation_id: str, expect: int, **arguments):
        response = generated.operation(operation_id).sync_detailed(client=client, **arguments)
        assert response.status_code == expect, (operation_id, response.content)
        return response.parsed

    for collection in (SOURCE, DESTINATION):
        created = call("createCollection", 201, body=models.CollectionRequest(collection_id=collection))
        assert (created.data.collection_id, created.data.owner) == (collection, "alice")
    for collection, entity in ((SOURCE, EXAMPLE_ENTITY), (DESTINATION, DESTINATION_ENTITY)):
        written = call("upsertEntities", 207, body=models.Entity.from_dict(entity), ercollectionid=collection)
        assert [item.id for item in written.data.responses.success] == [entity["id"]]

    relationship = models.Relationship.from_dict(EXAMPLE_RELATIONSHIP)
    written = call("upsertRelationships", 207, body=relationship, ercollectionid=SOURCE, async_=False)
    [success] = written.data.responses.success
    assert success.id == EXAMPLE_RELATIONSHIP["id"]
    [record] = follow(call, success.tracker, live_service.url).data
    assert (record.state.value, record.transaction_id) == ("Completed", str(written.transaction_id))

    # the relationship renamed, as a job: the 202 names its transaction and tracker as fields (a new name, since an
    # upsert whose content equals the current version writes no version)
    renamed = models.Relationship.from_dict({**EXAMPLE_RELATIONSHIP, "relationshipName": "renamed"})
    accepted = call("upsertRelationships", 202, body=[renamed], ercollectionid=SOURCE, async_=True)
    assert accepted.data.transaction_id == accepted.transaction_id
    job = wait_for_job(call, accepted.data.tracker, live_service.url)
    assert job.additional_properties["jobData"] == {"total": 1, "done": 1, "failed": 0, "pending": 0}

    read = call("getRelationship", 200, relationship_id=EXAMPLE_RELATIONSHIP["id"], ercollectionid=SOURCE,
                include_system_data=True)
    assert read.data[0].sys_data.sys_relationship_version == 2
    incoming = call("listEntityRelationships", 200, entity_id=DESTINATION_ENTITY["id"], ercollectionid=DESTINATION,
                    direction=models.ListEntityRelationshipsDirection.INCOMING)
    assert [(item.id, item.source_er_collection_id) for item in incoming.data] == [(EXAMPLE_RELATIONSHIP["id"],
                                                                                   SOURCE)]


def follow(call, tracker: str, base_url: str):
    """GET a tracker URL through the generated operation: its query parameters are the operation's arguments."""
    assert tracker.startswith(f"{base_url}/apollo/status/logs?")
    filters = dict(parse_qsl(urlsplit(tracker).query))
    assert set(filters) <= {"transactionid", "relationshipid", "entityid"}
    return call("getStatusLogs", 200, ercollectionid=SOURCE, **filters)


def wait_for_job(call, tracker: str, base_url: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = follow(call, tracker, base_url).data[0]
        assert job.request_object.value == "Job"
        if job.state.value == "Completed":
            return job
        time.sleep(0.05)
    raise AssertionError(f"the job of {tracker} did not complete within {timeout} s")
