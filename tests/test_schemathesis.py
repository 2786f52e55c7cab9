"""Schemathesis over the whole OpenAPI document, against a live service on a loopback port, on every plugin.

Every operation gets its documented examples, the coverage phase's boundary and negative values, generated
valid and invalid requests and stateful sequences, all carrying a valid token: no 5xx; every status code,
content type, header and body is the documented one; invalid data is refused with a 4xx; valid data is
not; undeclared methods get 405 with Allow; a request without the token is refused. Every check of
schemathesis is on; tests/schemathesis.toml lists the few exceptions, each with its reason.

The service runs in a thread of its own on 127.0.0.1 (schemathesis 4 speaks HTTP to a real server; its
pytest plugin does not run under pytest 9, so its CLI is run), seeded with the contract's example so that
the documented examples reach the 2xx paths. The default run keeps the examples per operation small; a
longer run for a release (docs/SECURITY.md):

    ERAPI_SCHEMATHESIS_EXAMPLES=500 python -m pytest tests/test_schemathesis.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from erapi.app import create_app
from erapi.openapi import EXAMPLE_ENTITY, EXAMPLE_RELATIONSHIP
from tests.api_fixtures import make_config, token
from tests.live_server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tests" / "schemathesis.toml"
MAX_EXAMPLES = int(os.environ.get("ERAPI_SCHEMATHESIS_EXAMPLES", "15"))
SEED = os.environ.get("ERAPI_SCHEMATHESIS_SEED", "")


def seed(url: str) -> None:
    """The contract's setting: alice owns both collections, an AHU in each, bob may read one."""
    alice = {"Authorization": f"Bearer {token('alice')}"}
    for collection in ("august_14_81", "august_14_8"):
        assert requests.post(f"{url}/apollo/collections", json={"collectionId": collection},
                             headers=alice, timeout=30).status_code == 201
    source = {**EXAMPLE_ENTITY}
    destination = {**EXAMPLE_ENTITY, "id": EXAMPLE_RELATIONSHIP["destinationEntityId"], "entityName": "AHU-2"}
    for collection, item in (("august_14_81", source), ("august_14_8", destination)):
        response = requests.post(f"{url}/apollo/er/entities", json=item, timeout=30,
                                 headers={**alice, "ercollectionid": collection})
        assert response.status_code == 207 and response.json()["data"]["responses"]["success"]
    assert requests.put(f"{url}/apollo/collections/august_14_81/acl", json={"principal": "bob", "access": ["read"]},
                        headers=alice, timeout=30).status_code == 200


@pytest.fixture
def live_service(storage_name, storage_settings):
    # a sequence number not reached is waited for, then 503: schemathesis names numbers of its own invention
    config = make_config(storage_name, storage_settings, changes={"read_your_writes_wait_seconds": 0.01})
    with LiveServer(create_app(config)) as server:
        seed(server.url)
        yield server


def test_every_operation_conforms_to_the_description(live_service, tmp_path):
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
        f"{live_service.url}/apollo/openapi.json",
        "--header", f"Authorization: Bearer {token('alice')}",
        "--max-examples", str(MAX_EXAMPLES),
        "--no-color",
    ]
    if SEED:
        command += ["--seed", SEED]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    # run from a scratch directory: schemathesis keeps a crash cache in its working directory
    run = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=1800,
                         stdin=subprocess.DEVNULL)
    report = run.stdout + run.stderr
    assert run.returncode == 0, "schemathesis found problems:\n" + _failures(report)
    assert "0 failures" in report or " passed" in report
    assert "Tested: " in report


def _failures(report: str, limit: int = 20_000) -> str:
    """The report's failures section, long bodies cut (a generated body can be megabytes)."""
    start = report.find("= FAILURES =")
    section = report[start:] if start >= 0 else report
    return "\n".join(line if len(line) < 600 else line[:600] + " ..." for line in section.splitlines())[:limit]
